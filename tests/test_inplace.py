"""Tests of inplace.py: the seed's global-registry API, as in its Quick Start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylightnix import (
    Build,
    DRef,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_path,
    build_wrapper,
    inplace_registry,
    inplace_reset,
    instantiate_inplace,
    match_all,
    match_latest,
    mkdrv,
    realize_inplace,
    realizeMany_inplace,
    rref2path,
    store_initialize,
)
from pylightnix.errors import RefError
from pylightnix.store.query import drefrrefs
from pylightnix.store.settings import fsS


def _hello(b: Build) -> None:
    for o in build_outpaths(b):
        with open(os.path.join(o, "greeting.txt"), "w") as f:
            f.write(f"{build_cattrs(b).greeting}, {os.urandom(4).hex()}\n")


def test_seed_quick_start_style() -> None:
    """instantiate_inplace(mkdrv, config, match_latest(), build_wrapper(f)) then realize_inplace."""
    store_initialize()
    dref = instantiate_inplace(
        mkdrv, {"name": "hello", "greeting": "Hi"}, match_latest(), build_wrapper(_hello)
    )
    r1 = realize_inplace(dref)
    r2 = realize_inplace(dref)
    assert r1 == r2
    with open(os.path.join(rref2path(r1), "greeting.txt")) as f:
        assert f.read().startswith("Hi, ")
    r3 = realize_inplace(dref, force_rebuild=[dref])
    assert r3 != r1
    assert drefrrefs(dref) == sorted([r1, r3])
    assert realize_inplace(dref) == r3
    assert rref2path(r1).startswith(fsS().storage + os.sep)


def _upper(b: Build) -> None:
    with open(build_path(b, build_cattrs(b).src)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "loud.txt"), "w") as f:
        f.write(text.upper())


def test_inplace_dependencies_across_calls() -> None:
    """A DRef from one instantiate_inplace call can be a dependency in the next."""
    store_initialize()
    a = instantiate_inplace(
        mkdrv, {"name": "a", "greeting": "hey"}, match_latest(), build_wrapper(_hello)
    )
    b = instantiate_inplace(
        mkdrv, {"name": "b", "src": [a, "greeting.txt"]}, match_latest(), build_wrapper(_upper)
    )
    rb = realize_inplace(b)
    with open(os.path.join(rref2path(rb), "loud.txt")) as f:
        assert f.read().startswith("HEY, ")
    assert set(inplace_registry().builders) == {a, b}


def test_realize_many_inplace_returns_every_chosen_rref() -> None:
    """realizeMany_inplace returns all realizations a match_all stage chose."""
    store_initialize()
    d = instantiate_inplace(
        mkdrv, {"name": "m", "greeting": "x"}, match_all(), build_wrapper(_hello, nouts=2)
    )
    rr = realizeMany_inplace(d)
    assert rr == drefrrefs(d) and len(rr) == 2


def test_reset_forgets_registrations() -> None:
    """After inplace_reset, a DRef registered before is no longer known."""
    store_initialize()
    d: DRef = instantiate_inplace(
        mkdrv, {"name": "h", "greeting": "x"}, match_latest(), build_wrapper(_hello)
    )
    inplace_reset()
    with pytest.raises(RefError, match="is not registered"):
        realize_inplace(d)


def test_the_registry_follows_the_default_store(tmp_path: Path) -> None:
    """Changing the default store starts a fresh inplace registry for it."""
    store_initialize()
    r1 = inplace_registry()
    S2 = store_initialize(str(tmp_path / "other" / "store-v1"), str(tmp_path / "other" / "tmp"))
    r2 = inplace_registry()
    assert r2 is not r1 and r2.S == S2
    assert inplace_registry() is r2

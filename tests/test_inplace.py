"""Tests of inplace.py: the seed's global-registry API, as in its Quick Start."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pylightnix import (
    Build,
    Config,
    DRef,
    RefPath,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_path,
    build_wrapper,
    dirrw,
    inplace_registry,
    inplace_reset,
    instantiate_inplace,
    match_all,
    match_latest,
    mkconfig,
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
    S2 = store_initialize(str(tmp_path / "other" / "store-v2"), str(tmp_path / "other" / "tmp"))
    r2 = inplace_registry()
    assert r2 is not r1 and r2.S == S2
    assert inplace_registry() is r2


def _src_tree(b: Build) -> None:
    d = os.path.join(build_outpath(b), "hello-2.10")
    os.makedirs(d)
    with open(os.path.join(d, "configure"), "w") as f:
        f.write("#!/bin/sh\necho configured\n")
    os.chmod(os.path.join(d, "configure"), 0o755)


def _hello_realize(b: Build) -> None:
    c = build_cattrs(b)
    o = build_outpath(b)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(build_path(b, c.src), os.path.join(tmp, "src"))
        dirrw(os.path.join(tmp, "src"))  # the copy of a read-only input must become writable
        with open(os.path.join(tmp, "src", "configure"), "a") as f:
            f.write("# patched\n")
        os.makedirs(os.path.join(o, "usr", "bin"))
        shutil.copy(os.path.join(tmp, "src", "configure"), os.path.join(o, "usr", "bin", "hello"))


def test_seed_quick_start_step_4_shape() -> None:
    """The seed's hello-bin stage: mkconfig(locals()) with a RefPath, copytree + dirrw."""
    store_initialize()
    hello_version = "2.10"
    hello_src = instantiate_inplace(
        mkdrv, {"name": "hello-src"}, match_latest(), build_wrapper(_src_tree)
    )

    def hello_config() -> Config:
        name: str = "hello-bin"
        src: RefPath = [hello_src, f"hello-{hello_version}"]
        return mkconfig(locals())

    hello_dref = instantiate_inplace(
        mkdrv, hello_config(), match_latest(), build_wrapper(_hello_realize)
    )
    hello_rref = realize_inplace(hello_dref)
    path = rref2path(hello_rref)
    exe = os.path.join(path, "usr", "bin", "hello")
    assert os.access(exe, os.X_OK)
    with open(exe) as f:
        assert f.read() == "#!/bin/sh\necho configured\n# patched\n"
    assert realize_inplace(hello_dref) == hello_rref
    # a deterministic build forced again gives the same data, hence the same RRef
    assert realize_inplace(hello_dref, force_rebuild=[hello_dref]) == hello_rref

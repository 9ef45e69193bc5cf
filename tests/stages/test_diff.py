"""Tests of diff over refs, configs and stage functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylightnix import (
    Build,
    DRef,
    InstantiateError,
    RefError,
    Registry,
    StorageSettings,
    build_outpath,
    build_wrapper,
    drefcfg,
    instantiate,
    match_all,
    mkdrv,
    realizeMany,
)
from pylightnix.stages.diff import diff
from pylightnix.stages.trivial import mkfile
from pylightnix.store.inspect import ConfigDiff


def _write(b: Build) -> None:
    Path(build_outpath(b), "x.txt").write_text("x")


def _pipe(r: Registry | None = None, opt: int = 1) -> DRef:
    src = mkfile("src", "data", "in.txt", r=r)
    return mkdrv(
        {"name": "pair", "src": [src, "in.txt"], "opt": {"lr": opt, "keep": True}},
        match_all(),
        build_wrapper(_write),
        r=r,
    )


def test_diff_of_drefs_rrefs_and_stage_functions(S: StorageSettings) -> None:
    """diff compares stored configs of refs and instantiated configs of stages alike."""
    d1, c1 = instantiate(_pipe, S=S)
    d2, _ = instantiate(_pipe, opt=5, S=S)
    r1 = realizeMany(c1)[0]
    want = ConfigDiff(changed={("opt", "lr"): (1, 5)})
    assert diff(d1, d2, S) == want
    assert diff(r1, d2, S) == want
    assert diff(_pipe, d2, S) == want
    assert diff(drefcfg(d1, S), d1, S).same
    with pytest.raises(RefError, match="is not a DRef, RRef, config or stage"):
        diff(d1, 42, S)


def test_diff_of_a_stage_returning_several_drefs_is_refused(S: StorageSettings) -> None:
    """A stage returning a list cannot be compared; the error says what it returned."""

    def two(r: object = None) -> list[str]:
        return [mkfile("a", "1", r=r), mkfile("b", "2", r=r)]  # type: ignore[arg-type]

    with pytest.raises(InstantiateError, match="diff compares stages returning one DRef"):
        diff(two, two, S)

"""A first end-to-end check of the core: two stages, a reuse, a selfref promise."""

from __future__ import annotations

import os

from pylightnix import (
    Build,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    instantiate,
    match_latest,
    match_only,
    mkdrv,
    realize1,
    rref2path,
    selfref,
)


def _write_x(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "a.txt"), "w") as f:
        f.write(str(build_cattrs(b).x))


def _double(b: Build) -> None:
    with open(build_path(b, build_cattrs(b).src)) as f:
        text = f.read()
    with open(build_path(b, build_cattrs(b).out), "w") as f:
        f.write(text * 2)


def _stage(r: object = None) -> object:
    a = mkdrv({"name": "a", "x": 21}, match_latest(), build_wrapper(_write_x))
    return mkdrv(
        {"name": "b", "src": [a, "a.txt"], "out": [selfref, "b.txt"]},
        match_only(),
        build_wrapper(_double),
    )


def test_two_stage_pipeline_is_built_once_then_reused(S: StorageSettings) -> None:
    """A second realize of the same closure returns the same RRef without building."""
    rref = realize1(instantiate(_stage, S=S))
    with open(os.path.join(rref2path(rref, S), "b.txt")) as f:
        assert f.read() == "2121"
    assert realize1(instantiate(_stage, S=S)) == rref

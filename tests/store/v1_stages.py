"""Stages of the store-v1 fixture (tests/fixtures/store-v1.tar.gz), shared by the script
that made it with the previous release and by tests/store/test_upgrade.py.

Only the public API that both versions share is used, so both compute the same DRefs.
"""

from __future__ import annotations

import os

from pylightnix import (
    Build,
    DRef,
    Registry,
    build_outpath,
    build_outpaths,
    build_wrapper,
    match_best,
    match_only,
    mkdrv,
)


def _source(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "data.txt"), "w") as f:
        f.write("source data\n")


def _train(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "acc.txt"), "w") as f:
            f.write(f"0.{i + 5}\n")


def source(r: Registry | None = None) -> DRef:
    """One realization, matched by match_only."""
    return mkdrv({"name": "source", "v": 1}, match_only(), build_wrapper(_source), r)


def train(r: Registry | None = None) -> DRef:
    """Three realizations of one build, ranked by their acc.txt (match_best)."""
    src = source(r)
    return mkdrv(
        {"name": "train", "src": src, "lr": 0.1},
        match_best("acc.txt"),
        build_wrapper(_train, nouts=3),
        r,
    )


def _fail(b: Build) -> None:
    raise ValueError("broken on purpose")


def broken(r: Registry | None = None) -> DRef:
    """A stage whose build fails (recorded as a failed realization by realizeE)."""
    return mkdrv({"name": "broken"}, match_only(), build_wrapper(_fail), r)

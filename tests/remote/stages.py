"""A three-stage pipeline for the remote-cache tests (importable by worker processes)."""

from __future__ import annotations

import os

from pylightnix import (
    Build,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    match_only,
    mkdrv,
    selfref,
)
from pylightnix.types import DRef


def _data(b: Build) -> None:
    out = build_outpath(b)
    with open(os.path.join(out, "data.csv"), "w") as f:
        f.writelines(f"{i},{i * i}\n" for i in range(build_cattrs(b).n))
    os.makedirs(os.path.join(out, "sub"))
    with open(os.path.join(out, "sub", "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(out, "sub", "run.sh"), 0o755)
    os.symlink("data.csv", os.path.join(out, "latest"))


def _train(b: Build) -> None:
    c = build_cattrs(b)
    with open(build_path(b, c.data)) as f:
        rows = f.read().splitlines()
    with open(build_path(b, c.model), "w") as f:
        f.write(f"model(rows={len(rows)}, lr={c.lr})\n")


def _report(b: Build) -> None:
    c = build_cattrs(b)
    with open(build_path(b, c.model)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "report.txt"), "w") as f:
        f.write(f"report of {text}")


def data(n: int = 100) -> DRef:
    """Stage 1: ``n`` rows, a folder, an executable and a symlink."""
    return mkdrv({"name": "data", "n": n}, match_only(), build_wrapper(_data))


def train(lr: float = 0.1, n: int = 100) -> DRef:
    """Stage 2: a model of stage 1."""
    d = data(n)
    return mkdrv(
        {"name": "train", "lr": lr, "data": [d, "data.csv"], "model": [selfref, "model.txt"]},
        match_only(),
        build_wrapper(_train),
    )


def report(lr: float = 0.1, n: int = 100) -> DRef:
    """Stage 3: a report of stage 2."""
    t = train(lr, n)
    return mkdrv(
        {"name": "report", "model": [t, "model.txt"]}, match_only(), build_wrapper(_report)
    )


def chain(n: int) -> DRef:
    """``n`` stages, each depending on the one before (for interrupted pushes)."""
    d = data(10)
    for i in range(1, n):
        d = mkdrv(
            {"name": f"step{i}", "prev": d, "i": i},
            match_only(),
            build_wrapper(_step),
        )
    return d


def _step(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "data.csv"), "w") as f:
        f.write(f"step {build_cattrs(b).i}\n" * 1000)


def _noise(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "weights.bin"), "wb") as f:
        f.write(os.urandom(build_cattrs(b).size))


def noise(size: int) -> DRef:
    """``size`` random bytes (incompressible), depending on stage 1."""
    return mkdrv(
        {"name": "noise", "size": size, "data": data(10)}, match_only(), build_wrapper(_noise)
    )

"""A small three-stage pipeline driven by the command-line tests (and docs/cli-session.md)."""

from __future__ import annotations

import os
import subprocess

from pylightnix import (
    Build,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    match_latest,
    match_only,
    mkdrv,
    selfref,
)
from pylightnix.types import DRef


def _make_data(b: Build) -> None:
    n = build_cattrs(b).n
    print(f"generating {n} samples")
    with open(os.path.join(build_outpath(b), "data.csv"), "w") as f:
        f.writelines(f"{i},{i * i}\n" for i in range(n))


def _train(b: Build) -> None:
    c = build_cattrs(b)
    with open(build_path(b, c.data)) as f:
        rows = f.read().splitlines()
    subprocess.run(["echo", f"training on {len(rows)} rows with lr={c.lr}"], check=True)
    os.makedirs(os.path.join(build_outpath(b), "weights"))
    with open(build_path(b, c.model), "w") as f:
        f.write(f"model(lr={c.lr}, rows={len(rows)})\n")


def _report(b: Build) -> None:
    c = build_cattrs(b)
    with open(build_path(b, c.model)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "report.txt"), "w") as f:
        f.write(f"report of {text}")


def _fail(b: Build) -> None:
    print("about to fail")
    raise RuntimeError("the realizer gave up")


def data(n: int = 100) -> DRef:
    """Stage 1: a data set of ``n`` rows."""
    return mkdrv({"name": "data", "n": n}, match_only(), build_wrapper(_make_data))


def train(lr: float = 0.1, n: int = 100) -> DRef:
    """Stage 2: a model trained on :func:`data`."""
    d = data(n)
    return mkdrv(
        {
            "name": "train",
            "lr": lr,
            "data": [d, "data.csv"],
            "model": [selfref, "weights", "model.txt"],
        },
        match_latest(),
        build_wrapper(_train),
    )


def report(lr: float = 0.1, n: int = 100) -> DRef:
    """Stage 3: a report on the model of :func:`train`."""
    t = train(lr, n)
    return mkdrv(
        {"name": "report", "model": [t, "weights", "model.txt"]},
        match_only(),
        build_wrapper(_report),
    )


def broken() -> DRef:
    """A stage whose build always fails."""
    return mkdrv({"name": "broken"}, match_only(), build_wrapper(_fail))

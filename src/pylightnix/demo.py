"""A small non-deterministic ML-style pipeline on the default store (``python -m pylightnix.demo``).

Three stages, standard library only:

* ``demo-dataset`` generates a synthetic binary classification dataset from the
  seed in its config (deterministic: it is built once and always has one
  realization);
* ``demo-train`` fits a logistic regression by stochastic gradient descent from
  five random initializations at once (``nouts=5``); each output holds
  ``model.json``, ``accuracy.txt`` (on the validation split) and ``loss.txt``,
  and ``match_best('accuracy.txt')`` chooses the best of the five;
* ``demo-eval`` measures the chosen model on the held-out test split.

The first run builds all three; a second run reuses everything. ``--retrain``
forces new training runs: five more competing realizations, and the matcher
picks the best among all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import selfref
from pylightnix.errors import PylightnixError
from pylightnix.progress import ProgressEvent
from pylightnix.realize.build import (
    Build,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_path,
    build_wrapper,
)
from pylightnix.realize.engine import realize
from pylightnix.realize.matchers import match_best, match_only
from pylightnix.realize.registry import Registry, instantiate, mkdrv
from pylightnix.store.init import fsinit
from pylightnix.store.query import drefrrefs, rref2path
from pylightnix.types import DRef, RRef

Row = list[float]


def _sigmoid(z: float) -> float:
    """Numerically safe logistic function.

    >>> _sigmoid(0.0), round(_sigmoid(50.0), 6), round(_sigmoid(-800.0), 6)
    (0.5, 1.0, 0.0)
    """
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def make_dataset(seed: int, n: int, features: int, noise: float) -> dict[str, list[Row]]:
    """Synthetic labelled points ``[x1..xd, y]`` split into train/val/test (60/20/20).

    >>> d = make_dataset(1, 10, 2, 0.5)
    >>> [len(d[k]) for k in ("train", "val", "test")], len(d["train"][0])
    ([6, 2, 2], 3)
    >>> make_dataset(1, 10, 2, 0.5) == d
    True
    """
    rng = random.Random(seed)  # noqa: S311 (a simulation, not cryptography)
    w = [rng.gauss(0.0, 2.0) for _ in range(features)]
    rows: list[Row] = []
    for _ in range(n):
        x = [rng.gauss(0.0, 1.0) for _ in range(features)]
        z = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + rng.gauss(0.0, noise)
        rows.append([*x, 1.0 if rng.random() < _sigmoid(z) else 0.0])
    a, b = int(n * 0.6), int(n * 0.8)
    return {"train": rows[:a], "val": rows[a:b], "test": rows[b:]}


def predict(model: Sequence[float], x: Sequence[float]) -> float:
    """Probability of class 1 under a logistic model ``[bias, w1..wd]``.

    >>> predict([0.0, 1.0], [0.0])
    0.5
    """
    return _sigmoid(model[0] + sum(wi * xi for wi, xi in zip(model[1:], x, strict=True)))


def accuracy(model: Sequence[float], rows: Sequence[Row]) -> float:
    """Share of rows whose label the model predicts (threshold 0.5).

    >>> accuracy([0.0, 1.0], [[2.0, 1.0], [-1.0, 1.0]])
    0.5
    """
    ok = sum((predict(model, r[:-1]) >= 0.5) == (r[-1] >= 0.5) for r in rows)
    return ok / len(rows) if rows else 0.0


def log_loss(model: Sequence[float], rows: Sequence[Row]) -> float:
    """Mean negative log-likelihood of the labels.

    >>> round(log_loss([0.0, 0.0], [[1.0, 1.0]]), 4)
    0.6931
    """
    eps = 1e-12
    total = 0.0
    for r in rows:
        p = min(max(predict(model, r[:-1]), eps), 1 - eps)
        total -= math.log(p) if r[-1] >= 0.5 else math.log(1 - p)
    return total / len(rows) if rows else 0.0


def train(rows: Sequence[Row], epochs: int, lr: float, rng: random.Random) -> list[float]:
    """Logistic regression by SGD from a random start, visiting rows in random order."""
    d = len(rows[0]) - 1
    model = [rng.gauss(0.0, 1.5) for _ in range(d + 1)]
    order = list(range(len(rows)))
    for _ in range(epochs):
        rng.shuffle(order)
        for i in order:
            x, y = rows[i][:-1], rows[i][-1]
            g = predict(model, x) - y
            model[0] -= lr * g
            for j in range(d):
                model[j + 1] -= lr * g * x[j]
    return model


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def build_dataset(b: Build) -> None:
    """Realizer of ``demo-dataset``: deterministic from the config's seed."""
    c = build_cattrs(b)
    data = make_dataset(c.seed, c.samples, c.features, c.noise)
    _write(build_path(b, c.out), json.dumps(data))


def build_training(b: Build) -> None:
    """Realizer of ``demo-train``: one independently seeded run per output folder."""
    c = build_cattrs(b)
    data = _read_json(build_path(b, c.data))
    for out in build_outpaths(b):
        # A fresh OS-random seed per run: training is non-deterministic on purpose.
        rng = random.Random(os.urandom(16))  # noqa: S311 (a simulation, not cryptography)
        model = train(data["train"], c.epochs, c.lr, rng)
        _write(os.path.join(out, "model.json"), json.dumps(model))
        _write(os.path.join(out, "accuracy.txt"), f"{accuracy(model, data['val']):.4f}\n")
        _write(os.path.join(out, "loss.txt"), f"{log_loss(model, data['val']):.4f}\n")


def build_evaluation(b: Build) -> None:
    """Realizer of ``demo-eval``: the chosen model on the test split."""
    c = build_cattrs(b)
    model = _read_json(build_path(b, c.model))
    test = _read_json(build_path(b, c.data))["test"]
    acc = accuracy(model, test)
    _write(build_path(b, c.report), f"test accuracy {acc:.4f} on {len(test)} samples\n")
    _write(os.path.join(build_outpath(b), "accuracy.txt"), f"{acc:.4f}\n")


def pipeline(r: Registry, nruns: int = 5) -> dict[str, DRef]:
    """The demo's stage function: dataset -> train (``nruns`` outputs, best kept) -> evaluate."""
    ds = mkdrv(
        {
            "name": "demo-dataset",
            "seed": 2024,
            "samples": 600,
            "features": 4,
            "noise": 1.0,
            "out": [selfref, "data.json"],
        },
        match_only(),
        build_wrapper(build_dataset),
        r=r,
    )
    tr = mkdrv(
        {
            "name": "demo-train",
            "data": [ds, "data.json"],
            "epochs": 3,
            "lr": 0.05,
            "model": [selfref, "model.json"],
            "accuracy": [selfref, "accuracy.txt"],
        },
        match_best("accuracy.txt"),
        build_wrapper(build_training, nouts=nruns),
        r=r,
    )
    ev = mkdrv(
        {
            "name": "demo-eval",
            "model": [tr, "model.json"],
            "data": [ds, "data.json"],
            "report": [selfref, "report.txt"],
        },
        match_only(),
        build_wrapper(build_evaluation),
        r=r,
    )
    return {"dataset": ds, "train": tr, "eval": ev}


@dataclass
class _Tally:
    """Collects what realize did per derivation (a progress hook)."""

    events: dict[DRef, str] = field(default_factory=dict)

    def __call__(self, e: ProgressEvent) -> None:
        if e.dref is not None and e.kind in ("built", "reuse"):
            self.events[e.dref] = e.kind


def _first_line(rref: RRef, name: str) -> str:
    with open(os.path.join(rref2path(rref), name), encoding="utf-8") as f:
        return f.readline().strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo on the default store and print what was built or reused."""
    ap = argparse.ArgumentParser(prog="python -m pylightnix.demo", description=__doc__)
    ap.add_argument(
        "--retrain",
        action="store_true",
        help="force new training runs (they compete with the old ones)",
    )
    args = ap.parse_args(argv)
    try:
        return _demo(args.retrain)
    except PylightnixError as e:
        # What to do is in the message (e.g. `pylightnix upgrade` for an older store).
        print(f"error: {e}", file=sys.stderr)
        return 1


def _demo(retrain: bool) -> int:
    t0 = time.monotonic()
    S = fsinit(None)
    print(f"pylightnix demo on the store {S.storage}")
    drefs, clo = instantiate(pipeline, S=S)
    tally = _Tally()
    _, _, ctx = realize(clo, force_rebuild=[drefs["train"]] if retrain else [], progress=tally)
    for label, d in drefs.items():
        (rref,) = ctx[d]
        what = "built " if tally.events.get(d) == "built" else "reused"
        print(f"  {label:8} {what}  {rref}")
    best = ctx[drefs["train"]][0]
    ntrain = len(drefrrefs(drefs["train"], S))
    print(
        f"  match_best('accuracy.txt') chose among {ntrain} training runs: validation accuracy "
        f"{_first_line(best, 'accuracy.txt')}, loss {_first_line(best, 'loss.txt')}"
    )
    print(f"  evaluation: {_first_line(ctx[drefs['eval']][0], 'report.txt')}")
    built = sum(1 for k in tally.events.values() if k == "built")
    print(
        f"done in {time.monotonic() - t0:.2f} s: {built} built, {len(tally.events) - built} reused"
    )
    if built:
        print("run it again: everything is reused (or add --retrain for 5 more training runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A small learning-rate sweep for the web view's tests, its benchmark and docs/ui.md.

``dataset`` writes a CSV, a text note and a PNG chart (drawn here with zlib);
``train`` has two outputs per learning rate (two seeds), records
``metrics.json`` and ``accuracy.txt``, and ``match_best("accuracy.txt")``
picks the better seed. The seed 1 of the largest learning rate diverges: with
``realizeE`` that is a failed run. ``report`` depends on every ``train``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from typing import Any

from pylightnix import (
    Build,
    DRef,
    Registry,
    StorageSettings,
    autostage,
    build_cattrs,
    build_outpath,
    build_wrapper,
    instantiate,
    match_best,
    match_latest,
    mkdrv,
    realizeE,
    selfref,
)

LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
"""The learning rates of the default sweep; 1.0 diverges for seed 1."""


def png(width: int, height: int, pixel: Any) -> bytes:
    """A truecolour PNG of ``pixel(x, y) -> (r, g, b)`` (no third-party image library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def accuracy(lr: float, seed: int) -> float:
    """The accuracy ``train`` records for a learning rate and seed."""
    return round(0.95 - 0.3 * abs(math.log10(lr) + 1) - 0.04 * seed, 4)


@autostage
def dataset(rows=50, out=[selfref, "data.csv"]):  # type: ignore[no-untyped-def]  # noqa: B006
    print(f"generating {rows} rows")
    with open(out, "w") as f:
        f.writelines(f"{i},{i * i % 17}\n" for i in range(rows))
    folder = os.path.dirname(out)
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("a toy data set\nsecond line <b>not bold</b>\n")
    with open(os.path.join(folder, "chart.png"), "wb") as f:
        f.write(png(64, 48, lambda x, y: (x * 4, y * 5, 160 if (x // 8 + y // 8) % 2 else 40)))


@autostage(nouts=2, matcher=match_best("accuracy.txt"))
def train(data=dataset, lr=0.1, epochs=3, rindex=0, build=None):  # type: ignore[no-untyped-def]
    with open(data.out) as f:
        n = len(f.read().splitlines())
    print(f"training on {n} rows, lr={lr}, seed={rindex}")
    for e in range(epochs):
        print(f"epoch {e}: loss {1.0 / (e + 1) + lr:.4f}")
    if lr == 1.0 and rindex == 1:
        raise ValueError(f"diverged at lr={lr} seed={rindex}")
    out = build.outpaths[rindex]
    acc = accuracy(lr, rindex)
    with open(os.path.join(out, "accuracy.txt"), "w") as f:
        f.write(str(acc))
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"accuracy": acc, "loss": round(1 - acc, 4)}, f)


def _report(b: Build) -> None:
    models = build_cattrs(b).models
    with open(os.path.join(build_outpath(b), "report.txt"), "w") as f:
        f.write(f"a report on {len(models)} models\n")


def sweep_stages(lrs: tuple[float, ...] = LRS) -> Any:
    """The stage function of a sweep over ``lrs`` and a report on its models."""

    def stage(r: Registry) -> tuple[list[DRef], DRef]:
        trains = [train(r, lr=lr) for lr in lrs]
        rep = mkdrv({"name": "report", "models": trains}, match_latest(), build_wrapper(_report), r)
        return trains, rep

    return stage


def realize_sweep(S: StorageSettings, lrs: tuple[float, ...] = LRS) -> tuple[list[DRef], DRef]:
    """Realize the sweep in ``S`` recording failures; return the train DRefs and the report's."""
    clo = instantiate(sweep_stages(lrs), S=S)
    realizeE(clo)
    trains, rep = clo[0]
    return [DRef(x) for x in trains], DRef(rep)

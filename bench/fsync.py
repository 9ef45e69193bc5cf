"""Cost of durability: realizing with ``StorageSettings.durable=True`` versus ``False``.

``durable=True`` fsyncs every file and folder of a derivation and of a
realization before it becomes visible, and the parent folder after the
rename (so that a power loss cannot leave a visible but empty object).
Each stage writes a few small files and one of ``--size`` bytes. Both
variants run interleaved in the same process; the minimum of ``--repeat``
runs is reported, in milliseconds per realization, with the ratio
durable/plain.

    .venv/bin/python bench/fsync.py [--dir PATH] [--stages 50] [--size 65536]

Run it on the disk that matters: on tmpfs fsync is free.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from pylightnix import (
    Build,
    build_cattrs,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
)
from pylightnix.store.fsops import remove_tree
from pylightnix.types import DRef


def _write(b: Build) -> None:
    c = build_cattrs(b)
    out = build_outpath(b)
    for k in range(3):
        with open(os.path.join(out, f"small{k}.txt"), "w") as f:
            f.write(f"{c.i} {k}\n")
    with open(os.path.join(out, "data.bin"), "wb") as f:
        f.write(bytes([c.i % 256]) * c.size)


def chain(n: int, size: int, tag: str, r: Any = None) -> DRef:
    """An n-stage chain whose stages write three small files and one of ``size`` bytes."""
    d = None
    for i in range(n):
        cfg: dict[str, Any] = {"name": f"{tag}{i}", "i": i, "size": size}
        if d is not None:
            cfg["d"] = d
        d = mkdrv(cfg, match_only(), build_wrapper(_write), r)
    assert d is not None
    return d


_FSYNCS = [0]
_real_fsync = os.fsync


def _counting_fsync(fd: int) -> None:
    _FSYNCS[0] += 1
    _real_fsync(fd)


def run(parent: str | None, n: int, size: int, durable: bool, tag: str) -> tuple[float, float]:
    """Seconds and fsync calls per realization of a cold n-stage realize."""
    base = tempfile.mkdtemp(dir=parent, prefix="plx-bench-fsync-")
    try:
        S = fsinit(mkSS(os.path.join(base, "s"), durable=durable))
        _FSYNCS[0] = 0
        os.fsync = _counting_fsync
        try:
            t0 = time.perf_counter()
            realize(instantiate(chain, n, size, tag, S=S))
            dt = time.perf_counter() - t0
        finally:
            os.fsync = _real_fsync
        return dt / n, _FSYNCS[0] / n
    finally:
        remove_tree(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--stages", type=int, default=50)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    plain: list[tuple[float, float]] = []
    durable: list[tuple[float, float]] = []
    for k in range(a.repeat):
        plain.append(run(a.dir, a.stages, a.size, False, f"p{k}-"))
        durable.append(run(a.dir, a.stages, a.size, True, f"d{k}-"))
    p, d = min(plain)[0] * 1e3, min(durable)[0] * 1e3
    where = a.dir or tempfile.gettempdir()
    print(f"store under {where}: {a.stages} stages, {a.size} byte data file each")
    print(f"plain   {p:8.2f} ms/realization, {plain[0][1]:.1f} fsyncs/realization")
    print(f"durable {d:8.2f} ms/realization, {durable[0][1]:.1f} fsyncs/realization")
    print(f"ratio durable/plain {d / p:.2f}  (fsync cost {d - p:.2f} ms/realization)")


if __name__ == "__main__":
    main()

"""No-op benchmark: a 1,000-stage chain and a 1,000-leaf fan-in.

Each shape is instantiated and realized cold (every stage builds, with a
trivial realizer), then instantiated and realized again with everything
cached (the no-op pass, best of 3). Per-stage costs are printed in microseconds next to
the targets of issue 2 (no-op < 50 us/stage, cold < 1 ms/stage) as ratios.

Three passes per shape: ``cold`` (every stage builds), ``noop`` (everything
cached, same process: configs and parsed refs are warm), ``noop-new`` (a new
Python process instantiates and realizes the same closure, timed inside that
process, without interpreter start-up).

Cold realization is bound by the filesystem: every realization creates a
handful of folders and files (output, reserved files, index marker), so it
is also worth running with ``--dir /dev/shm`` to see the library's own cost.

Run: ``.venv/bin/python bench/noop.py [--stages N] [--dir D] [--profile chain-noop]``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pylightnix import (
    Build,
    DRef,
    Registry,
    StorageSettings,
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

NOOP_TARGET_US = 50.0
COLD_TARGET_US = 1000.0
REPEAT = 3
"""No-op passes report the best of this many runs (a busy machine only adds time)."""


def _touch(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def chain(n: int, r: Registry) -> DRef:
    """``n`` stages, each depending on the previous one."""
    prev: DRef | None = None
    for i in range(n):
        cfg: dict[str, Any] = {"name": f"c{i}", "i": i}
        if prev is not None:
            cfg["prev"] = prev
        prev = mkdrv(cfg, match_only(), build_wrapper(_touch), r=r)
    if prev is None:
        raise ValueError("a chain needs at least one stage")
    return prev


def fanin(n: int, r: Registry) -> DRef:
    """``n`` independent leaves and one stage depending on all of them."""
    leaves = [
        mkdrv({"name": f"l{i}", "i": i}, match_only(), build_wrapper(_touch), r=r) for i in range(n)
    ]
    return mkdrv({"name": "top", "deps": leaves}, match_only(), build_wrapper(_touch), r=r)


def _run(S: StorageSettings, shape: Callable[[int, Registry], DRef], n: int) -> float:
    t0 = time.perf_counter()
    _, clo = instantiate(shape, n, S=S)
    realize(clo)
    return time.perf_counter() - t0


def _child(root: str, sname: str, n: int) -> None:
    """Time one instantiate+realize of an existing store in this (new) process."""
    S = mkSS(root)
    shape = {"chain": chain, "fanin": fanin}[sname]
    print(f"{_run(S, shape, n):.6f}")


def _noop_new_process(root: str, sname: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", root, sname, str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def _scaling(where: str | None) -> None:
    print("no-op instantiate+realize of a chain, per stage (flat = linear; quadratic doubles)")
    print(f"{'stages':>7} {'total s':>9} {'us/stage':>10}")
    for n in (250, 500, 1000, 2000, 4000):
        root = tempfile.mkdtemp(prefix="plx-bench-scaling-", dir=where)
        try:
            S = fsinit(mkSS(root))
            _run(S, chain, n)
            dt = min(_run(S, chain, n) for _ in range(3))
            print(f"{n:7} {dt:9.3f} {dt / n * 1e6:10.1f}")
        finally:
            remove_tree(root)


def main(argv: list[str] | None = None) -> None:
    """Run both shapes and print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stages", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="where to create the stores (default: $TMPDIR)")
    ap.add_argument("--profile", choices=["chain-cold", "chain-noop", "fanin-cold", "fanin-noop"])
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="no-op cost per stage of the chain at 250..4000 stages (linear: it stays flat)",
    )
    ap.add_argument("--child", nargs=3, metavar=("ROOT", "SHAPE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.scaling:
        _scaling(args.dir)
        return
    n = args.stages
    shapes = {"chain": chain, "fanin": fanin}
    where = args.dir or tempfile.gettempdir()
    print(f"pylightnix no-op benchmark, {n} stages per shape (fan-in: {n} leaves + 1), in {where}")
    print(f"{'shape':6} {'pass':9} {'total s':>9} {'us/stage':>10} {'target us':>10} {'ratio':>7}")
    for sname, shape in shapes.items():
        stages = n if sname == "chain" else n + 1
        root = tempfile.mkdtemp(prefix=f"plx-bench-{sname}-", dir=args.dir)
        try:
            S = fsinit(mkSS(root))
            passes = (
                ("cold", COLD_TARGET_US),
                ("noop", NOOP_TARGET_US),
                ("noop-new", NOOP_TARGET_US),
            )
            for pname, target in passes:
                if pname == "noop-new":
                    dt = min(_noop_new_process(root, sname, n) for _ in range(REPEAT))
                elif args.profile == f"{sname}-{pname}":
                    prof = cProfile.Profile()
                    prof.enable()
                    dt = _run(S, shape, n)
                    prof.disable()
                    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(30)
                elif pname == "noop":
                    dt = min(_run(S, shape, n) for _ in range(REPEAT))
                else:
                    dt = _run(S, shape, n)
                us = dt / stages * 1e6
                print(f"{sname:6} {pname:9} {dt:9.3f} {us:10.1f} {target:10.0f} {us / target:7.2f}")
        finally:
            remove_tree(root)
    print("ratio = measured / target (no-op < 50 us/stage, cold < 1000 us/stage): < 1.00 meets it")


if __name__ == "__main__":
    main()

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
handful of folders and files (output, reserved files, index line), so it
is also worth running with ``--dir /dev/shm`` to see the library's own cost.

``--candidates`` measures instead the no-op realize of one derivation that
has M = 100 / 1,000 / 10,000 realizations in its context (issue 15): with
``match_latest(1)`` and with ``match_best("score.txt")`` after the first
scoring, in the same process and in a new one, and the cost per extra
candidate between the sizes (targets: under 2 us and 5 us).

Run: ``.venv/bin/python bench/noop.py [--stages N] [--dir D] [--profile chain-noop]``,
``.venv/bin/python bench/noop.py --candidates [--dir /dev/shm]``.
"""

from __future__ import annotations

import argparse
import cProfile
import fcntl
import hashlib
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
    build_outpaths,
    build_wrapper,
    fsinit,
    instantiate,
    match_best,
    match_latest,
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


def cold_floor(where: str, n: int) -> tuple[float, float]:
    """Seconds (wall, CPU) for the filesystem floor of ``n`` cold stages: a folder, one
    file, a rename each.

    Made in a temporary folder and renamed into a store-like folder on the
    same filesystem, as an insertion does at the least.
    """
    base = tempfile.mkdtemp(prefix="plx-bench-floor-", dir=where)
    try:
        tmp, store = os.path.join(base, "tmp"), os.path.join(base, "store")
        os.mkdir(tmp)
        os.mkdir(store)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            d = os.path.join(tmp, f"o{i}")
            os.mkdir(d)
            with open(os.path.join(d, "out.txt"), "w") as f:
                f.write("x")
            os.rename(d, os.path.join(store, f"o{i}"))
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        remove_tree(base)


def layout_floor(where: str, n: int) -> tuple[float, float]:
    """Seconds (wall, CPU) for the system calls ``n`` cold stages need under the store
    layout itself, with no library logic: what any implementation of store-v2 pays.

    Per stage: the derivation (a folder with ``config.json``, renamed in); its
    build lock (a lock file, ``flock``); the build (a folder with the output
    file); the output read back and hashed; the reserved folder with
    ``context.json`` and ``meta.json``; read-only modes; the realization
    renamed in; its index line appended; one temporary-roots write.
    """
    base = tempfile.mkdtemp(prefix="plx-bench-layout-", dir=where)
    try:
        tmp, store, locks = (os.path.join(base, x) for x in ("tmp", "store", "locks"))
        for d in (tmp, store, locks):
            os.mkdir(d)
        roots = os.open(os.path.join(base, "roots"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            name = hashlib.sha256(b'{"name":"s%d"}' % i).hexdigest()[:32] + f"-s{i}"
            d = os.path.join(tmp, f"d{i}")
            os.mkdir(d)
            with open(os.path.join(d, "config.json"), "wb") as f:
                f.write(b'{"name":"s%d"}' % i)
            ddir = os.path.join(store, name)
            os.rename(d, ddir)
            lock = os.open(os.path.join(locks, name), os.O_RDWR | os.O_CREAT)
            fcntl.flock(lock, fcntl.LOCK_EX)
            b = os.path.join(tmp, f"b{i}")
            os.mkdir(b)
            out = os.path.join(b, "out.txt")
            with open(out, "w") as f:
                f.write("x")
            with open(out, "rb") as f:
                rhash = hashlib.sha256(f.read()).hexdigest()[:32]
            res = os.path.join(b, "__pylightnix__")
            os.mkdir(res)
            for fname in ("context.json", "meta.json"):
                with open(os.path.join(res, fname), "wb") as f:
                    f.write(b"{}")
                os.chmod(os.path.join(res, fname), 0o444)
            for x in (out, res, b):
                os.chmod(x, 0o555 if x != out else 0o444)
            ix = os.open(os.path.join(ddir, "index.tsv"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(ix, f"R\t{rhash}\t{rhash}\t0.0\n".encode())
            os.close(ix)
            os.rename(b, os.path.join(ddir, rhash))
            os.close(lock)
            os.write(roots, f"rref:{rhash}-{name}\n".encode())
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        os.close(roots)
        for top, dirs, _ in os.walk(base):
            for x in dirs:
                os.chmod(os.path.join(top, x), 0o755)
        remove_tree(base)


def _run2(
    S: StorageSettings, shape: Callable[[int, Registry], DRef], n: int
) -> tuple[float, float]:
    """Seconds (wall, CPU of this process) of one instantiate + realize."""
    t0, c0 = time.perf_counter(), time.process_time()
    _, clo = instantiate(shape, n, S=S)
    realize(clo)
    return time.perf_counter() - t0, time.process_time() - c0


def _run(S: StorageSettings, shape: Callable[[int, Registry], DRef], n: int) -> float:
    return _run2(S, shape, n)[0]


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


CANDIDATES = (100, 1000, 10000)
LATEST_TARGET_US = 2.0
BEST_TARGET_US = 5.0


def _scored(b: Build) -> None:
    for o in build_outpaths(b):
        with open(os.path.join(o, "score.txt"), "w") as f:
            f.write(f"{int.from_bytes(os.urandom(4), 'big') / 2**32}\n")


def _many(S: StorageSettings, matcher: str) -> float:
    """One no-op instantiate + realize of the stage with M realizations, in CPU seconds.

    CPU time of this process (user + system): the machine is shared, and a
    no-op realize does not wait for anything but the CPU.
    """
    m = match_latest(1) if matcher == "latest" else match_best("score.txt")
    t0 = time.process_time()
    _, clo = instantiate(mkdrv, {"name": "many"}, m, build_wrapper(_scored), S=S)
    realize(clo)
    return time.process_time() - t0


def _grow(S: StorageSettings, total: int) -> None:
    """Build realizations of the stage (through realize, in batches of nouts) up to ``total``."""
    from pylightnix import drefrrefs

    while True:
        d, clo = instantiate(mkdrv, {"name": "many"}, match_latest(1), build_wrapper(_scored), S=S)
        have = len(drefrrefs(d, S))
        if have >= total:
            return
        k = min(500, total - have)
        _, clo = instantiate(
            mkdrv, {"name": "many"}, match_latest(k), build_wrapper(_scored, nouts=k), S=S
        )
        realize(clo, force_rebuild=True)


def _forget(S: StorageSettings) -> None:
    """Forget this process's cached facts, so "first" is a first lookup (if there is a cache)."""
    try:
        from pylightnix.store.facts import forget_facts
    except ImportError:  # a version without the facts cache (to compare with)
        return
    forget_facts(S)


def _candidates_child(root: str, matcher: str) -> None:
    S = mkSS(root)
    print(f"{_many(S, matcher):.6f}")


def _candidates(where: str | None) -> None:
    root = tempfile.mkdtemp(prefix="plx-bench-cands-", dir=where)
    print(f"no-op realize of one stage with M realizations (store in {root}), CPU us")
    print(f"{'M':>6} {'matcher':8} {'first us':>10} {'same-proc us':>13} {'new-proc us':>12}")
    rows: dict[str, list[tuple[int, float, float]]] = {"latest": [], "best": []}
    try:
        S = fsinit(mkSS(root))
        for m in CANDIDATES:
            t0 = time.perf_counter()
            _grow(S, m)
            setup = time.perf_counter() - t0
            # A store is realized long after it was built: let the folders settle
            # (store/query.py keeps a listing of folders unchanged for a second).
            time.sleep(1.1)
            for matcher in ("latest", "best"):
                _forget(S)
                first = _many(S, matcher)
                same = min(_many(S, matcher) for _ in range(5))
                new = min(
                    float(
                        subprocess.run(
                            [sys.executable, __file__, "--child-cands", root, matcher],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                    )
                    for _ in range(3)
                )
                rows[matcher].append((m, same, new))
                print(
                    f"{m:6} {matcher:8} {first * 1e6:10.0f} {same * 1e6:13.0f} {new * 1e6:12.0f}"
                    + (f"   (set-up {setup:.1f} s)" if matcher == "latest" else "")
                )
        print("cost per extra candidate (slope between sizes), same process / new process:")
        for matcher, target in (("latest", LATEST_TARGET_US), ("best", BEST_TARGET_US)):
            for (m1, s1, n1), (m2, s2, n2) in zip(rows[matcher], rows[matcher][1:], strict=False):
                ss = (s2 - s1) / (m2 - m1) * 1e6
                ns = (n2 - n1) / (m2 - m1) * 1e6
                print(
                    f"  {matcher:6} M {m1:>5} -> {m2:<6} {ss:6.2f} us / {ns:6.2f} us"
                    f"   target < {target} us: ratio {max(ss, ns) / target:.2f}"
                )
    finally:
        remove_tree(root)


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
    ap.add_argument(
        "--candidates",
        action="store_true",
        help="no-op realize of one stage with M = 100 / 1,000 / 10,000 realizations",
    )
    ap.add_argument("--child", nargs=3, metavar=("ROOT", "SHAPE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--child-cands", nargs=2, metavar=("ROOT", "MATCHER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_cands:
        _candidates_child(*args.child_cands)
        return
    if args.candidates:
        _candidates(args.dir)
        return
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
                    dt, cpu = _run2(S, shape, n)
                    prof.disable()
                    st = pstats.Stats(prof, stream=sys.stderr)
                    st.sort_stats("tottime").print_stats(30)
                    st.sort_stats("cumulative").print_stats(40)
                elif pname == "noop":
                    dt = min(_run(S, shape, n) for _ in range(REPEAT))
                else:
                    dt, cpu = _run2(S, shape, n)
                us = dt / stages * 1e6
                print(f"{sname:6} {pname:9} {dt:9.3f} {us:10.1f} {target:10.0f} {us / target:7.2f}")
                if pname == "cold":
                    fl, flcpu = cold_floor(where, stages)
                    print(
                        f"{'':6} {'floor':9} {fl:9.3f} {fl / stages * 1e6:10.1f}"
                        f"   cold / floor (folder + file + rename per stage): {dt / fl:.2f}"
                    )
                    print(
                        f"{'':6} {'cpu':9} {cpu:9.3f} {cpu / stages * 1e6:10.1f}"
                        f"   CPU of the cold pass; the floor's: {flcpu / stages * 1e6:.1f} us/stage"
                        f" (ratio {cpu / flcpu:.2f})"
                    )
                    lay, laycpu = layout_floor(where, stages)
                    print(
                        f"{'':6} {'layout':9} {lay:9.3f} {lay / stages * 1e6:10.1f}"
                        f"   the layout's own system calls (no library logic): {lay / fl:.2f}x the"
                        f" floor; cold / layout: {dt / lay:.2f} (CPU {cpu / laycpu:.2f})"
                    )
        finally:
            remove_tree(root)
    print("ratio = measured / target (no-op < 50 us/stage, cold < 1000 us/stage): < 1.00 meets it")


if __name__ == "__main__":
    main()

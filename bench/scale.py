"""Whole-store operations on stores of 10,000 and 100,000 realizations vs the filesystem floor.

The store: chains of 10 derivations (``s0`` .. ``s9``, each depending on the
previous one), one realization each holding a one-line file. Set-up goes
through the real insertion path in bulk: ``instantiate`` stores the
derivations, then ``store_realization`` inserts each output (hash,
reserved files, read-only modes, index line, rename), in two processes
working on disjoint chains. The realize engine adds nothing to such a store
but its build logs (a no-op realize afterwards finds everything).

Per size, each operation is timed on the whole store and divided by its
number of realizations; the ratio is to the **floor** measured in the same
run: a ``scandir`` of the store folder and of every derivation folder plus
one small-file read (``out.txt``) per realization. Operations:

* ``gc-dry``: ``gc(dry_run=True)`` keeping the last realization of 9 chains in 10;
* ``ls-json``: ``pylightnix ls --json`` in a new process (stdout to /dev/null),
  minus the same command on an empty store (interpreter and CLI start-up);
* ``verify``: ``verify(rehash=False)`` (folders, reserved files, modes);
* ``noop``: a new process instantiates every chain and realizes the closure
  (timed inside it: every derivation is matched, nothing is built);
* ``gc``: the real collection with the same roots (deletes a tenth; last).

Times are CPU seconds (user + system, ``time.process_time`` or the child's
rusage): the machine is shared, and every operation here is CPU-bound on a
warm page cache. Wall seconds are printed next to them.

With ``/tmp/orig-venv`` holding the original (``pylightnix==0.3.0``, see
``bench/scale_orig.py``) the original's ``store_gc`` is timed on a store of
the same shape and size (``--orig-size``), built with its own API, and
compared with our ``gc-dry`` per realization. Create that venv with::

    python3 -m venv /tmp/orig-venv && /tmp/orig-venv/bin/pip install pylightnix==0.3.0

Run: ``.venv/bin/python bench/scale.py [--dir /dev/shm] [--sizes 10000,100000]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
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
    RRef,
    StorageSettings,
    build_outpath,
    build_wrapper,
    fsinit,
    gc,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    verify,
)
from pylightnix.store.fsops import remove_tree
from pylightnix.store.insert import store_realization

CHAIN = 10
TARGET = 3.0
ORIG_VENV = "/tmp/orig-venv"
HERE = os.path.dirname(os.path.abspath(__file__))


def _touch(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x\n")


def chains(first: int, count: int, r: Registry | None = None) -> list[DRef]:
    """Chains ``first .. first+count-1`` of 10 stages; returns their last derivations."""
    tops = []
    for c in range(first, first + count):
        prev: DRef | None = None
        for i in range(CHAIN):
            cfg: dict[str, Any] = {"name": f"s{i}", "chain": c}
            if prev is not None:
                cfg["prev"] = prev
            prev = mkdrv(cfg, match_only(), build_wrapper(_touch), r=r)
        assert prev is not None
        tops.append(prev)
    return tops


def _insert(args: tuple[str, int, int]) -> list[RRef]:
    """Insert chains ``first .. first+count-1`` through store_realization; return their tops."""
    root, first, count = args
    S = mkSS(root)
    tops, clo = instantiate(chains, first, count, S=S)
    done: dict[DRef, RRef] = {}
    for drv in clo.derivations:
        out = tempfile.mkdtemp(dir=S.tmpdir)
        with open(os.path.join(out, "out.txt"), "w") as f:
            f.write("x\n")
        ctx = {d: [done[d]] for d in drv.deps}
        done[drv.dref] = store_realization(
            S, drv.dref, drv.config, ctx, out, build_start=time.time()
        )
    return [done[t] for t in tops]


def build_store(root: str, n: int) -> tuple[StorageSettings, list[RRef]]:
    """A store of ``n`` realizations (n/10 chains); returns it and the roots GC keeps."""
    S = fsinit(mkSS(root))
    nchains = n // CHAIN
    step = 500
    parts = [(root, f, min(step, nchains - f)) for f in range(0, nchains, step)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        tops = [t for part in pool.map(_insert, parts) for t in part]
    keep = [t for i, t in enumerate(tops) if i % 10 != 9]
    return S, keep


def floor(S: StorageSettings) -> int:
    """The filesystem floor: scan every derivation folder, read one small file per realization."""
    n = 0
    with os.scandir(S.storage) as top:
        for d in top:
            if not d.is_dir(follow_symlinks=False) or d.name.startswith("."):
                continue
            with os.scandir(d.path) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False) and len(e.name) == 32:
                        with open(os.path.join(e.path, "out.txt"), "rb") as f:
                            f.read()
                        n += 1
    return n


def _timed(f: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best CPU seconds and best wall seconds of ``repeat`` runs of ``f``."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        f()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def _child_cpu(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Best CPU seconds (from the child's rusage) and wall seconds of running ``cmd``."""
    cpu, wall = [], []
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - w0)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return min(cpu), min(wall)


def _noop_child(root: str, nchains: int) -> None:
    """In a new process: instantiate every chain and realize the closure; print CPU and wall."""
    S = mkSS(root)
    c0, w0 = time.process_time(), time.perf_counter()
    _, clo = instantiate(chains, 0, nchains, S=S)
    realize(clo, assert_realized=[d.dref for d in clo.derivations])
    print(json.dumps([time.process_time() - c0, time.perf_counter() - w0]))


def _noop(root: str, nchains: int, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--noop-child", root, str(nchains)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _orig(where: str | None, n: int) -> dict[str, Any] | None:
    py = os.path.join(ORIG_VENV, "bin", "python")
    if not os.path.exists(py):
        print(
            f"(no original to compare with: {py} is missing; create it with "
            f"`python3 -m venv {ORIG_VENV} && {ORIG_VENV}/bin/pip install pylightnix==0.3.0`)"
        )
        return None
    cmd = [py, os.path.join(HERE, "scale_orig.py"), "--realizations", str(n)]
    if where:
        cmd += ["--dir", where]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd="/", env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_size(where: str | None, n: int, repeat: int) -> dict[str, float]:
    """Build a store of ``n`` realizations, time every operation, print a table; return us/rref."""
    base = tempfile.mkdtemp(prefix="plx-bench-scale-", dir=where)
    root = os.path.join(base, "root")
    per: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        S, keep = build_store(root, n)
        setup = time.perf_counter() - t0
        empty = fsinit(mkSS(os.path.join(base, "empty")))
        count = floor(S)
        assert count == n, (count, n)
        print(f"\n{n} realizations in {S.storage} (set-up {setup:.1f} s, {n / setup:.0f}/s)")
        print(f"{'operation':10} {'CPU s':>8} {'wall s':>8} {'CPU us/rref':>12} {'ratio':>7}")
        cli = [sys.executable, "-m", "pylightnix", "--store"]
        start_cpu, start_wall = _child_cpu([*cli, empty.root, "ls", "--json"], repeat)
        rows: list[tuple[str, tuple[float, float]]] = [
            ("floor", _timed(lambda: floor(S), repeat)),
            ("gc-dry", _timed(lambda: gc(S, keep_rrefs=keep, dry_run=True), repeat)),
        ]
        ls_cpu, ls_wall = _child_cpu([*cli, S.root, "ls", "--json"], repeat)
        rows.append(("ls-json", (ls_cpu - start_cpu, ls_wall - start_wall)))
        rows.append(("verify", _timed(lambda: verify(S=S, rehash=False), repeat)))
        rows.append(("noop", _noop(S.root, n // CHAIN, repeat)))
        rows.append(("gc", _timed(lambda: gc(S, keep_rrefs=keep), 1)))
        fl = rows[0][1][0]
        for name, (cpu, wall) in rows:
            per[name] = cpu / n * 1e6
            print(f"{name:10} {cpu:8.3f} {wall:8.3f} {per[name]:12.1f} {cpu / fl:7.2f}")
        print(f"(ls-json: minus {start_cpu:.3f} s CPU of `ls --json` on an empty store)")
        per["floor_s"] = fl
    finally:
        remove_tree(base)
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None, help="where to build the stores (default: $TMPDIR)")
    ap.add_argument("--sizes", default="10000,100000", help="store sizes, in realizations")
    ap.add_argument("--repeat", type=int, default=3, help="runs per operation (best is kept)")
    ap.add_argument("--orig-size", type=int, default=10000, help="size of the original's store")
    ap.add_argument("--noop-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.noop_child:
        _noop_child(a.noop_child[0], int(a.noop_child[1]))
        return
    results = {n: run_size(a.dir, n, a.repeat) for n in (int(x) for x in a.sizes.split(","))}
    print(f"\nratio = CPU time / floor (target < {TARGET:.0f}); per object, size by size:")
    sizes = sorted(results)
    for name in ("gc-dry", "ls-json", "verify", "noop", "gc"):
        cells = "  ".join(f"{n}: {results[n][name]:7.1f} us" for n in sizes)
        print(f"  {name:8} {cells}")
    orig = _orig(a.dir, a.orig_size)
    if orig is not None:
        theirs = orig["gc_cpu_s"] / orig["realizations"] * 1e6
        ours = results.get(a.orig_size, results[sizes[0]])["gc-dry"]
        print(
            f"original 0.3.0 store_gc on {orig['realizations']} realizations: {theirs:.1f} us/rref "
            f"CPU ({orig['gc_wall_s'] / orig['realizations'] * 1e6:.1f} wall); ours gc-dry "
            f"{ours:.1f} us/rref: ratio ours/original {ours / theirs:.2f} "
            f"(set-up of its store: {orig['setup_s']:.0f} s)"
        )


if __name__ == "__main__":
    main()

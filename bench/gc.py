"""GC time on large stores (targets: linear; per realization of the store, < 100 us to
scan or dry-run, < 200 us to delete) and how long a realize beside it waits (< 50 ms).

The store is made quickly by calling ``store_realization`` directly on tiny
folders: chains of 10 derivations, each derivation with 5 realizations, each
realization's context naming one realization of the previous derivation.
Half of the chains' last realizations are kept (``keep_rrefs``), so a real
run deletes a bit more than half of the store.

Passes per size, each timed as a whole and divided by the store size:
``scan`` (a real run that keeps everything: reading the graph, reachability,
leftovers), ``dry`` (a dry run: the same plus the sizes of the garbage),
``real`` (the deletion of the garbage).

    .venv/bin/python bench/gc.py                      # 2,500 / 5,000 / 10,000 realizations
    .venv/bin/python bench/gc.py --dir /dev/shm --sizes 10000

Times are CPU time of this process (``time.process_time``: user + system),
so that other load on the machine does not inflate them.

``beside`` (largest size only): the real run again on a fresh store while
another process realizes new 3-stage closures in a loop. That process times
every wait for the GC lock (the only thing a realize can wait on the
collector for); the longest one is reported against the 50 ms target, with
the longest realize during the collection and before it (wall times).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from pylightnix import (
    Build,
    DRef,
    StorageSettings,
    allrrefs,
    build_outpath,
    build_wrapper,
    fsinit,
    gc,
    instantiate,
    match_only,
    mkconfig,
    mkdrv,
    mkSS,
    realize,
)
from pylightnix.config import config_hash, config_name
from pylightnix.refs import mkdref
from pylightnix.store import gc as gcmod
from pylightnix.store.fsops import remove_tree
from pylightnix.store.insert import store_realization
from pylightnix.store.temproots import release_all_temproots
from pylightnix.types import RRef

TARGET_US = {"scan": 100.0, "dry": 100.0, "real": 200.0}
TARGET_WAIT_MS = 50.0
CHAIN = 10
PER_DRV = 5


def make_store(root: str, n: int) -> tuple[StorageSettings, list[RRef]]:
    """A store of ``n`` realizations; returns (settings, the rrefs to keep)."""
    S = fsinit(mkSS(root))
    keep: list[RRef] = []
    chains = max(1, n // (CHAIN * PER_DRV))
    for c in range(chains):
        prev = None
        prev_r: list[RRef] = []
        for i in range(CHAIN):
            cfg: dict[str, object] = {"name": f"c{c}-{i}", "i": i}
            if prev is not None:
                cfg["dep"] = prev
            conf = mkconfig(cfg)
            dref = mkdref(config_hash(conf), config_name(conf))
            rs: list[RRef] = []
            for j in range(PER_DRV):
                out = tempfile.mkdtemp(dir=S.tmpdir)
                with open(os.path.join(out, "x"), "w") as f:
                    f.write(f"{c} {i} {j}")
                ctx = {prev: [prev_r[j]]} if prev is not None else {}
                rs.append(store_realization(S, dref, conf, ctx, out, build_start=0.0))
            prev, prev_r = dref, rs
        if c % 2 == 0:
            keep.append(prev_r[0])
    # What this process inserted is not kept alive by it: the passes decide.
    release_all_temproots()
    return S, keep


def _touch(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write("x")


def _small(k: int, r: Any = None) -> DRef:
    d = mkdrv({"name": "w0", "k": k}, match_only(), build_wrapper(_touch), r)
    for i in (1, 2):
        d = mkdrv({"name": f"w{i}", "k": k, "dep": d}, match_only(), build_wrapper(_touch), r)
    return d


def _realize_loop(root: str, ready: Any, stop: Any, q: Any) -> None:
    """(child) Realize new small closures until told to stop, timing GC-lock waits."""
    from pylightnix.store import locks

    waits: list[tuple[float, float]] = []
    realizes: list[tuple[float, float]] = []
    orig = locks._acquire

    def timed(fd: int, op: int, what: str, timeout: float | None) -> None:
        t0 = time.perf_counter()
        orig(fd, op, what, timeout)
        if "GC lock" in what:
            waits.append((t0, time.perf_counter() - t0))

    locks._acquire = timed  # type: ignore[assignment]
    S = mkSS(root)
    k = 0
    while not stop.is_set() and k < 100_000:
        t0 = time.perf_counter()
        realize(instantiate(_small, k, S=S))
        realizes.append((t0, time.perf_counter() - t0))
        k += 1
        if k == 20:
            ready.set()
    q.put((waits, realizes))


def beside(root: str, n: int) -> None:
    """The real run while another process realizes: longest GC-lock wait of a realize."""
    S, keep = make_store(root, n)
    ctx = multiprocessing.get_context("spawn")
    ready, stop, q = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_realize_loop, args=(S.root, ready, stop, q))
    p.start()
    ready.wait(120)
    holds: list[float] = []
    orig = gcmod.gc_exclusive

    @contextlib.contextmanager
    def timed(S: StorageSettings, *, timeout: float | None = None) -> Iterator[None]:
        with orig(S, timeout=timeout):
            h0 = time.perf_counter()
            try:
                yield
            finally:
                holds.append(time.perf_counter() - h0)

    gcmod.gc_exclusive = timed  # type: ignore[assignment]
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        res = gc(S, keep_rrefs=keep)
    finally:
        gcmod.gc_exclusive = orig
    cpu = time.process_time() - c0
    t1 = time.perf_counter()
    stop.set()
    waits, realizes = q.get(timeout=120)
    p.join(120)
    during = [w for s, w in waits if t0 <= s <= t1]
    rdur = [d for s, d in realizes if s + d >= t0 and s <= t1]
    before = [d for s, d in realizes if s + d < t0]
    worst = max(during, default=0.0) * 1e3
    print(
        f"{n:>12} beside {cpu:>8.3f} {cpu / n * 1e6:>8.1f}"
        f"   deleted {len(res.deleted_rrefs)} rrefs in {t1 - t0:.2f} s wall;"
        f" {len(rdur)} realizes ran beside it"
    )
    print(
        f"{'':>12} longest GC-lock wait of a realize during the collection: {worst:.2f} ms"
        f" (target {TARGET_WAIT_MS:.0f} ms, ratio {worst / TARGET_WAIT_MS:.2f});"
        f" longest realize: {max(rdur, default=0.0) * 1e3:.1f} ms during,"
        f" {max(before, default=0.0) * 1e3:.1f} ms before"
    )
    order = sorted(range(len(holds)), key=holds.__getitem__)
    print(
        f"{'':>12} the collector held the GC lock {len(holds)} times:"
        f" median {holds[order[len(order) // 2]] * 1e3:.2f} ms,"
        f" longest {holds[order[-1]] * 1e3:.2f} ms (section {order[-1] + 1})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None, help="parent folder of the benchmark stores")
    ap.add_argument("--sizes", default="2500,5000,10000", help="store sizes (realizations)")
    a = ap.parse_args()
    print(f"{'realizations':>12} {'pass':>6} {'seconds':>8} {'us/rref':>8} {'ratio':>6}")
    for n in (int(x) for x in a.sizes.split(",")):
        base = tempfile.mkdtemp(dir=a.dir, prefix="plx-bench-gc-")
        try:
            S, keep = make_store(os.path.join(base, "s"), n)
            everything = list(allrrefs(S))
            passes = (("scan", everything, False), ("dry", keep, True), ("real", keep, False))
            for name, kept, dry in passes:
                t0 = time.process_time()
                res = gc(S, keep_rrefs=kept, dry_run=dry)
                dt = time.process_time() - t0
                us = dt / n * 1e6
                print(
                    f"{n:>12} {name:>6} {dt:>8.3f} {us:>8.1f} {us / TARGET_US[name]:>6.2f}"
                    f"   deleted {len(res.deleted_rrefs)} rrefs, {res.bytes_freed} bytes"
                )
            if n == max(int(x) for x in a.sizes.split(",")):
                beside(os.path.join(base, "b"), n)
        finally:
            remove_tree(base)


if __name__ == "__main__":
    main()

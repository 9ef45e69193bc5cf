"""GC time on large stores (targets: linear; per realization of the store, < 100 us to
scan or dry-run, < 200 us to delete).

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
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from pylightnix import StorageSettings, allrrefs, fsinit, gc, mkconfig, mkSS
from pylightnix.config import config_hash, config_name
from pylightnix.refs import mkdref
from pylightnix.store.fsops import remove_tree
from pylightnix.store.insert import store_realization
from pylightnix.types import RRef

TARGET_US = {"scan": 100.0, "dry": 100.0, "real": 200.0}
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
    return S, keep


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
        finally:
            remove_tree(base)


if __name__ == "__main__":
    main()

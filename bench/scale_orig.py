"""The original's side of ``bench/scale.py``: pylightnix 0.3.0 builds a store, times store_gc.

Runs ONLY under the python of a separate venv holding the original from the
package index, never under ours (``bench/scale.py`` starts it)::

    python3 -m venv /tmp/orig-venv
    /tmp/orig-venv/bin/pip install pylightnix==0.3.0
    /tmp/orig-venv/bin/python bench/scale_orig.py --dir /dev/shm --realizations 10000

The store has the shape of ``bench/scale.py``'s: chains of 10 derivations,
one realization each (a one-line file), built with the original's own API
(``mkdrv``, ``build_wrapper``, ``realize``). ``store_gc`` is then asked
what it would remove when the last realization of nine chains in ten is
kept: the original's GC only reports (its caller removes), so it is its dry
run. Prints one JSON line: realizations, set-up seconds, store_gc CPU and
wall seconds, and the counts it reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any

from pylightnix import (  # type: ignore[import-not-found]  # the original, 0.3.0
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkconfig,
    mkdrv,
    mkSS,
    realize,
    store_gc,
)

CHAIN = 10


def _touch(b: Any) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x\n")


def _chains(first: int, count: int, r: Any = None) -> list[Any]:
    tops = []
    for c in range(first, first + count):
        prev = None
        for i in range(CHAIN):
            cfg: dict[str, Any] = {"name": f"s{i}", "chain": c}
            if prev is not None:
                cfg["prev"] = prev
            prev = mkdrv(mkconfig(cfg), match_only(), build_wrapper(_touch), r)
        tops.append(prev)
    return tops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--realizations", type=int, default=10000)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="plx-orig-", dir=a.dir)
    try:
        S = mkSS(os.path.join(base, "root"))
        fsinit(S)
        t0 = time.perf_counter()
        chains = a.realizations // CHAIN
        keep = []
        for start in range(0, chains, 100):  # a closure per 100 chains keeps each realize small
            tops, clo = instantiate(_chains, start, min(100, chains - start), S=S)
            _, _, ctx = realize(clo)
            keep.extend(ctx[t][0] for j, t in enumerate(tops) if (start + j) % 10 != 9)
        setup = time.perf_counter() - t0
        c0, w0 = time.process_time(), time.perf_counter()
        drefs, rrefs_out = store_gc([], keep, S)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        print(
            json.dumps(
                {
                    "realizations": chains * CHAIN,
                    "setup_s": setup,
                    "gc_cpu_s": cpu,
                    "gc_wall_s": wall,
                    "would_remove_drefs": len(drefs),
                    "would_remove_rrefs": len(rrefs_out),
                }
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

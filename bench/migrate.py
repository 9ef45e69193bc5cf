"""Migrate benchmark: import an original ``store-v0`` of a chain of stages.

Writes an old-format store (the test fixture writer, tests/legacy/oldstore.py)
with ``--stages`` derivations in a chain, ``--rrefs`` realizations each (each
built in the context of every realization of its parent, so contexts grow as
the original's did), then times ``migrate_store`` into a fresh store and a
second, no-op run. Prints objects per second; the goal is linear time in the
number of objects (compare ``--stages 200`` with ``--stages 400``).

Run: ``.venv/bin/python bench/migrate.py [--stages N] [--rrefs K] [--dir D]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.legacy.oldstore import OldStore

from pylightnix import fsinit, migrate_store, mkSS


def build_old(root: str, stages: int, rrefs: int) -> int:
    """An old store: a chain of ``stages`` derivations with ``rrefs`` realizations each."""
    o = OldStore(root, "0.3")
    prev: str | None = None
    prev_r: list[str] = []
    ctx: dict[str, list[str]] = {}
    n = 0
    for i in range(stages):
        cfg: dict[str, object] = {"name": f"s{i}", "out": ["__self__", "f"]}
        if prev is not None:
            cfg["dep"] = prev
            ctx = {**ctx, prev: prev_r}
        d = o.mkdrv(cfg)
        prev_r = [o.mkrealization(d, ctx, {"f": f"{i}-{k}"}) for k in range(rrefs)]
        prev = d
        n += 1 + rrefs
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", type=int, default=200)
    ap.add_argument("--rrefs", type=int, default=2)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        n = build_old(os.path.join(tmp, "old"), a.stages, a.rrefs)
        S = fsinit(mkSS(os.path.join(tmp, "new")))
        t0 = time.perf_counter()
        res = migrate_store(os.path.join(tmp, "old"), S=S)
        t1 = time.perf_counter()
        again = migrate_store(os.path.join(tmp, "old"), S=S)
        t2 = time.perf_counter()
        assert res.ok and again.rrefs == res.rrefs
        print(
            f"objects={n} migrate={t1 - t0:.2f}s ({n / (t1 - t0):.0f} objects/s) "
            f"rerun={t2 - t1:.2f}s ({n / (t2 - t1):.0f} objects/s)"
        )


if __name__ == "__main__":
    main()

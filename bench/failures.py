"""Failure capture must not slow the normal no-op path.

Two stores hold the same sweep of ``--stages`` independent stages, each
realized once successfully. In the second store every stage also carries
``--failed`` failed realizations in the same context (recorded by
``realizeE`` while a flag file made the realizer raise). The no-op realize of
the sweep is timed in both stores (best of ``--repeat``), and so is a no-op
``realizeE``; the printed ratios should stay close to 1.0, because failed
realizations are ``F`` lines of the derivation's ``index.tsv``, which the
candidate query never lists.

Run: ``.venv/bin/python bench/failures.py [--stages N] [--failed K] [--dir D]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from pylightnix import (
    Build,
    DRef,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_latest,
    mkdrv,
    mkSS,
    realize,
    realizeE,
)
from pylightnix.store.fsops import remove_tree


def _train(b: Build) -> None:
    c = build_cattrs(b)
    with open(os.path.join(build_outpath(b), "score.txt"), "w") as f:
        f.write(str(c.seed))
    if os.path.exists(c.flag):
        raise ValueError(f"seed {c.seed} diverged")


def sweep(n: int, flag: str) -> list[DRef]:
    """``n`` independent training stages (one per seed)."""
    return [
        mkdrv({"name": "train", "seed": i, "flag": flag}, match_latest(), build_wrapper(_train))
        for i in range(n)
    ]


def _best(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def _store(base: str, name: str, n: int, failed: int, flag: str) -> StorageSettings:
    S = fsinit(mkSS(os.path.join(base, name)))
    if failed:
        with open(flag, "w"):
            pass
        for _ in range(failed):
            _, _, _, fails = realizeE(instantiate(sweep, n, flag, S=S))
            if len(fails) != n:
                raise SystemExit(f"expected {n} failures, got {len(fails)}")
        os.remove(flag)
    realize(instantiate(sweep, n, flag, S=S))
    return S


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", type=int, default=300)
    p.add_argument("--failed", type=int, default=5)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    base = tempfile.mkdtemp(prefix="plx-bench-failures-", dir=a.dir)
    try:
        flag = os.path.join(base, "flag")
        clean = _store(base, "clean", a.stages, 0, flag)
        dirty = _store(base, "dirty", a.stages, a.failed, flag)
        res = {}
        for label, S in (("clean", clean), ("with-failures", dirty)):
            clo = instantiate(sweep, a.stages, flag, S=S)
            res[label] = (
                _best(lambda c=clo: realize(c), a.repeat),  # type: ignore[misc]
                _best(lambda c=clo: realizeE(c), a.repeat),  # type: ignore[misc]
            )
        print(f"{a.stages} stages, {a.failed} failed realizations per stage in the 2nd store")
        for label, (t1, t2) in res.items():
            us1, us2 = t1 / a.stages * 1e6, t2 / a.stages * 1e6
            print(f"  {label:14s} no-op realize {us1:7.1f} us/stage   no-op realizeE {us2:7.1f}")
        r1 = res["with-failures"][0] / res["clean"][0]
        r2 = res["with-failures"][1] / res["clean"][1]
        print(f"ratio with-failures/clean: realize {r1:.2f}, realizeE {r2:.2f}")
    finally:
        remove_tree(base)  # realizations are read-only: make them writable first


if __name__ == "__main__":
    main()

"""Lock overhead per stage: the same realizes with real locks and with no-op locks.

Both variants run in the same process on the same kind of store; the no-op
variant replaces ``build_lock`` and ``gc_shared`` in the realize layer by
``contextlib.nullcontext``. Passes (N-stage chain, each stage
writes one small file):

* ``cold``: every stage builds (one build lock per stage, one GC lock per call);
* ``noop``: everything is cached (the matcher answers before any build lock);
* ``cycle``: one ``build_lock`` acquire+release alone, in microseconds.

Target: the locks cost < 5% of a cold realize and < 5% of a no-op realize.

    .venv/bin/python bench/locks.py [--dir /dev/shm] [--stages 300] [--repeat 3]

Times are CPU time of this process (``time.process_time``: user + system),
so that other load on the machine does not inflate them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
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
from pylightnix.store.locks import build_lock
from pylightnix.types import DRef

TARGET = 0.05


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write(str(build_cattrs(b).i))


def chain(n: int, tag: str, r: Any = None) -> DRef:
    """An n-stage chain of trivial stages."""
    d = mkdrv({"name": f"{tag}0", "i": 0}, match_only(), build_wrapper(_write), r)
    for i in range(1, n):
        d = mkdrv({"name": f"{tag}{i}", "i": i, "d": d}, match_only(), build_wrapper(_write), r)
    return d


@contextlib.contextmanager
def no_locks() -> Iterator[None]:
    """Replace the locks the realize layer imported by no-ops within the block.

    Every loaded ``pylightnix.realize.*`` module that holds ``build_lock`` or
    ``gc_shared`` is patched, whichever module of that layer takes them, and
    the shared GC lock of temporary-root registration (``store.temproots``).
    """

    def null(*_a: Any, **_k: Any) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    saved: list[tuple[object, str, object]] = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("pylightnix.realize") or name == "pylightnix.store.temproots":
            for attr in ("build_lock", "gc_shared"):
                if hasattr(mod, attr):
                    saved.append((mod, attr, getattr(mod, attr)))
                    setattr(mod, attr, null)
    try:
        yield
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)


def run(parent: str | None, n: int, tag: str) -> tuple[float, float]:
    """Seconds per stage of a cold and a no-op instantiate+realize of an n-chain."""
    base = tempfile.mkdtemp(dir=parent, prefix="plx-bench-locks-")
    try:
        S = fsinit(mkSS(os.path.join(base, "s")))
        t0 = time.process_time()
        realize(instantiate(chain, n, tag, S=S))
        cold = (time.process_time() - t0) / n
        t0 = time.process_time()
        realize(instantiate(chain, n, tag, S=S))
        noop = (time.process_time() - t0) / n
        return cold, noop
    finally:
        remove_tree(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--stages", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with_l: list[tuple[float, float]] = []
    without: list[tuple[float, float]] = []
    for k in range(a.repeat):  # interleaved, so that machine noise hits both alike
        with_l.append(run(a.dir, a.stages, f"l{k}-"))
        with no_locks():
            without.append(run(a.dir, a.stages, f"n{k}-"))
    base = tempfile.mkdtemp(dir=a.dir, prefix="plx-bench-locks-")
    try:
        S = fsinit(mkSS(os.path.join(base, "s")))
        d = DRef(f"dref:{'a' * 32}-x")
        m = 2000
        t0 = time.process_time()
        for _ in range(m):
            with build_lock(S, d):
                pass
        cycle = (time.process_time() - t0) / m
    finally:
        remove_tree(base)
    print(f"{'pass':>6} {'locks us/stage':>15} {'no-op us/stage':>15} {'overhead':>9} {'ratio':>6}")
    for i, name in enumerate(("cold", "noop")):
        lk = min(x[i] for x in with_l) * 1e6
        nl = min(x[i] for x in without) * 1e6
        over = (lk - nl) / nl
        print(f"{name:>6} {lk:>15.1f} {nl:>15.1f} {over:>8.1%} {over / TARGET:>6.2f}")
    cold = min(x[0] for x in with_l)
    print(
        f"build_lock acquire+release: {cycle * 1e6:.1f} us = {cycle / cold:.1%} of a cold stage"
        f" (ratio to target {cycle / cold / TARGET:.2f})"
    )


if __name__ == "__main__":
    main()

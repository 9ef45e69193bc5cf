"""Build-log capture and explain must cost little next to the work they describe.

1. Per-build overhead: ``--stages`` tiny independent stages are realized
   (forced, ``jobs=1``, every build's output captured fd-level); the same
   number of bare ``capture_build_log`` blocks are timed alone. The ratio is
   the share of a tiny build spent on capturing its log.
2. Volume: a realizer's subprocess writes ``--mib`` MiB to stdout; the time
   inside the capture (bytes go to the log file) is compared with the same
   subprocess writing to a plain file outside any capture.
3. Explain: on a chain of ``--chain`` stages already realized,
   ``explain(closure)`` is compared with a no-op ``realize`` (both linear).

Run: ``.venv/bin/python bench/buildlog.py [--stages N] [--mib M] [--chain C]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable

from pylightnix import (
    Build,
    DRef,
    build_cattrs,
    build_outpath,
    build_wrapper,
    explain,
    fsinit,
    instantiate,
    match_latest,
    mkdrv,
    mkSS,
    realize,
)
from pylightnix.realize.buildlog import capture_build_log


def _tiny(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write(str(build_cattrs(b).i))


def _sweep(n: int) -> list[DRef]:
    return [mkdrv({"name": "t", "i": i}, match_latest(), build_wrapper(_tiny)) for i in range(n)]


def _chain(n: int) -> DRef:
    d = mkdrv({"name": "c", "i": 0}, match_latest(), build_wrapper(_tiny))
    for i in range(1, n):
        d = mkdrv({"name": "c", "i": i, "prev": d}, match_latest(), build_wrapper(_tiny))
    return d


def _best(f: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    """Run the three measurements and print ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", type=int, default=300)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--chain", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        S = fsinit(mkSS(os.path.join(d, "plx")))
        clo = instantiate(_sweep, a.stages, S=S)
        t_build = _best(lambda: realize(clo, force_rebuild=True), 1)
        log = os.path.join(d, "x.log")

        def captures() -> None:
            for _ in range(a.stages):
                with capture_build_log(log):
                    pass

        t_cap = _best(captures)
        print(
            f"per build: capture {1e6 * t_cap / a.stages:.0f} us of "
            f"{1e6 * t_build / a.stages:.0f} us per tiny build: ratio {t_cap / t_build:.3f}"
        )

        cmd = ["head", "-c", str(a.mib << 20), "/dev/zero"]

        def to_log() -> None:
            with capture_build_log(log):
                subprocess.run(cmd, check=True)
            os.unlink(log)

        def to_file() -> None:
            with open(log, "wb") as f:
                subprocess.run(cmd, check=True, stdout=f)
            os.unlink(log)

        t_log, t_file = _best(to_log), _best(to_file)
        print(
            f"volume: {a.mib} MiB into the log {t_log:.3f}s vs into a plain file "
            f"{t_file:.3f}s: ratio {t_log / t_file:.2f}"
        )

        chain = instantiate(_chain, a.chain, S=S)
        realize(chain)
        t_noop = _best(lambda: realize(chain))
        t_explain = _best(lambda: explain(chain))
        print(
            f"explain of a {a.chain}-stage chain {t_explain:.3f}s vs no-op realize "
            f"{t_noop:.3f}s: ratio {t_explain / t_noop:.2f}"
        )


if __name__ == "__main__":
    main()

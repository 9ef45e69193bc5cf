"""Start-up: ``import pylightnix`` and ``pylightnix --help`` against ``python -c pass``.

Whole processes, timed from outside (``time.perf_counter`` around
``subprocess.run``), medians of ``--runs`` runs, interleaved so that load on
the machine hits every command alike. Targets (issue 15): ``import
pylightnix`` within 3x of ``python -c pass``, ``pylightnix --help`` within 6x.

Run: ``.venv/bin/python bench/startup.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TARGETS = {"import pylightnix": 3.0, "pylightnix --help": 6.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    script = os.path.join(os.path.dirname(sys.executable), "pylightnix")
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import pylightnix": [sys.executable, "-c", "import pylightnix"],
        "pylightnix --help": [script, "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(a.runs):
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':20} {'median ms':>10} {'x pass':>8} {'target':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        target = TARGETS.get(name)
        print(
            f"{name:20} {med * 1e3:10.1f} {med / base:8.2f} "
            f"{'' if target is None else f'< {target:.0f}x':>7}"
        )


if __name__ == "__main__":
    main()

"""A build that runs until the test lets it finish: ``python -m tests.ui.slow ROOT GATE``.

It prints ``step 1``, waits (at most 60 s) until the file GATE exists, prints
``step 2`` and ends; the test reads its log live in between.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from pylightnix import (
    Build,
    build_outpath,
    build_wrapper,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
)


def _build(b: Build) -> None:
    print("step 1", flush=True)
    gate = b.config["gate"]
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    print("step 2", flush=True)
    with open(os.path.join(build_outpath(b), "done.txt"), "w") as f:
        f.write("done\n")


def main(root: str, gate: str) -> None:
    """Realize the slow stage in the store at ``root`` and print its RRef."""
    S = mkSS(root)
    clo = instantiate(
        lambda r: mkdrv({"name": "slow", "gate": gate}, match_only(), build_wrapper(_build), r),
        S=S,
    )
    print(realize1(clo))


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def slow_build(root: str, gate: str) -> Iterator[subprocess.Popen[str]]:
    """Run the slow build in another process; it is killed on the way out if still running."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ui.slow", root, gate],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")},
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Distributed benchmark: Dask and parallel builds against ``jobs=1`` (issue 11).

Four measurements, each printed with its ratio and the target:

* ``cpu``: 4 independent CPU-bound stages of about 2 s each (a sha256 loop
  calibrated on this machine) on a 2-worker ``LocalCluster`` vs ``jobs=1``;
  speed-up target >= 1.8x (2 workers);
* ``sweep``: a 3-seed ``@autostage(nouts=3)`` sweep whose outputs sleep 1 s,
  ``jobs=3`` vs ``jobs=1``; speed-up target >= 2.5x;
* ``overhead``: 200 independent trivial stages on the 2-worker cluster vs
  ``jobs=1``; the extra wall time per stage, target <= 5 ms;
* ``noop``: a no-op realize of a cached 1,000-stage chain with the Dask
  executor vs without; ratio target <= 1.2x (reuse is decided here: no task).

Each case builds in a fresh store under ``--dir``. The machine's other load
changes the CPU case most (it needs two idle cores).

Run: ``.venv/bin/python bench/distributed.py [--dir D] [--only cpu,sweep,...]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

# This file is named like the `distributed` package: keep its folder off the import path
# (of this process and of the worker processes it spawns, which inherit sys.path).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from pylightnix import (  # noqa: E402 - after the sys.path fix above
    Build,
    DRef,
    Registry,
    StorageSettings,
    autostage,
    build_cattrs,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    selfref,
)
from pylightnix.store.fsops import remove_tree  # noqa: E402

CPU_SECONDS = 2.0
SLEEP_SECONDS = 1.0
TRIVIAL = 200
CHAIN = 1000
NOOP_REPEAT = 7


def _spin(rounds: int) -> bytes:
    h = b"pylightnix"
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    return h


def _calibrate(seconds: float) -> int:
    """sha256 rounds taking ``seconds`` of one core here."""
    n = 100_000
    t = time.perf_counter()
    _spin(n)
    return int(n * seconds / (time.perf_counter() - t))


def _cpu(b: Build) -> None:
    c = build_cattrs(b)
    with open(os.path.join(build_outpath(b), "h"), "wb") as f:
        f.write(_spin(c.rounds))


def _touch(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write(build_cattrs(b).name)


def cpu_stages(rounds: int, r: Registry) -> list[DRef]:
    return [
        mkdrv({"name": f"cpu{i}", "rounds": rounds, "i": i}, match_only(), build_wrapper(_cpu), r)
        for i in range(4)
    ]


def trivial_stages(n: int, r: Registry) -> list[DRef]:
    return [mkdrv({"name": f"t{i}"}, match_only(), build_wrapper(_touch), r) for i in range(n)]


def chain(n: int, r: Registry) -> DRef:
    d = mkdrv({"name": "c0"}, match_only(), build_wrapper(_touch), r)
    for i in range(1, n):
        d = mkdrv({"name": f"c{i}", "prev": d}, match_only(), build_wrapper(_touch), r)
    return d


@autostage(nouts=3)
def sweep(seconds: float = SLEEP_SECONDS, out: Any = [selfref, "o"], rindex: int = 0) -> None:  # noqa: B006
    time.sleep(seconds)
    with open(out, "w") as f:
        f.write(str(rindex))


def _store(base: str, name: str) -> StorageSettings:
    root = os.path.join(base, name)
    remove_tree(root)
    return fsinit(mkSS(root))


def _timed(f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def _line(case: str, what: str, value: float, target: str, ok: bool) -> None:
    print(f"{case:<9} {what:<46} {value:8.3f}  target {target:<8} {'ok' if ok else 'MISSED'}")


def bench_cpu(base: str, client: Any) -> None:
    rounds = _calibrate(CPU_SECONDS)
    seq = _timed(lambda: realize(instantiate(cpu_stages, rounds, S=_store(base, "cpu1"))))
    dsk = _timed(
        lambda: realize(instantiate(cpu_stages, rounds, S=_store(base, "cpu2")), executor=client)
    )
    # The machine's own ceiling: the same work as 4 bare Dask tasks, no pylightnix.
    bare = _timed(
        lambda: client.gather([client.submit(_spin, rounds, pure=False) for _ in range(4)])
    )
    print(
        f"cpu       jobs=1 {seq:.2f} s, Dask 2 workers {dsk:.2f} s "
        f"(4 bare Dask tasks: {bare:.2f} s, {seq / bare:.2f}x)"
    )
    _line(
        "cpu", "speed-up of 4 x 2 s CPU stages on 2 workers", seq / dsk, ">= 1.8", seq / dsk >= 1.8
    )


def bench_sweep(base: str) -> None:
    seq = _timed(lambda: realize(instantiate(sweep, S=_store(base, "sw1"))))
    par = _timed(lambda: realize(instantiate(sweep, S=_store(base, "sw3")), jobs=3))
    print(f"sweep     jobs=1 {seq:.2f} s, jobs=3 {par:.2f} s")
    _line(
        "sweep",
        "speed-up of a nouts=3 sleeping sweep, jobs=3",
        seq / par,
        ">= 2.5",
        seq / par >= 2.5,
    )


def bench_overhead(base: str, client: Any) -> None:
    seq = _timed(lambda: realize(instantiate(trivial_stages, TRIVIAL, S=_store(base, "ov1"))))
    dsk = _timed(
        lambda: realize(
            instantiate(trivial_stages, TRIVIAL, S=_store(base, "ov2")), executor=client
        )
    )
    per = (dsk - seq) / TRIVIAL * 1000
    print(f"overhead  {TRIVIAL} trivial stages: jobs=1 {seq:.2f} s, Dask {dsk:.2f} s")
    _line("overhead", "extra ms per trivial stage on Dask", per, "<= 5", per <= 5)


def bench_noop(base: str, client: Any) -> None:
    S = _store(base, "noop")
    realize(instantiate(chain, CHAIN, S=S))
    seq: list[float] = []
    dsk: list[float] = []
    for _ in range(NOOP_REPEAT):  # interleaved: the machine's load hits both alike
        seq.append(_timed(lambda: realize(instantiate(chain, CHAIN, S=S))))
        dsk.append(_timed(lambda: realize(instantiate(chain, CHAIN, S=S), executor=client)))
    r = min(dsk) / min(seq)
    print(
        f"noop      {CHAIN}-stage chain, best of {NOOP_REPEAT}: without {min(seq):.3f} s, "
        f"with Dask {min(dsk):.3f} s"
    )
    _line("noop", "no-op realize with Dask / without", r, "<= 1.2", r <= 1.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp folder)")
    ap.add_argument("--only", default="cpu,sweep,overhead,noop")
    a = ap.parse_args()
    only = set(a.only.split(","))
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(dir=a.dir) as base:
        if "sweep" in only:
            bench_sweep(base)
        if only & {"cpu", "overhead", "noop"}:
            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=":0",
                ) as cluster,
                Client(cluster) as client,
            ):
                if "cpu" in only:
                    bench_cpu(base, client)
                if "overhead" in only:
                    bench_overhead(base, client)
                if "noop" in only:
                    bench_noop(base, client)


if __name__ == "__main__":
    main()

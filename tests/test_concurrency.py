"""Many real processes on one store: one build per derivation, same RRefs, GC never in the way."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from typing import Any

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    gc,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    rref2path,
    rrefdeps,
    verify,
)
from pylightnix.store.locks import gc_shared
from pylightnix.store.roots import register_root
from pylightnix.types import DRef, RRef

CTX = multiprocessing.get_context("spawn")
TIMEOUT = 120


def _count_and_write(b: Build) -> None:
    """Realizer: leave a marker outside the store, then write the output."""
    c = build_cattrs(b)
    with open(os.path.join(c.counter, f"{c.name}.{os.getpid()}.{os.urandom(4).hex()}"), "w"):
        pass
    with open(os.path.join(build_outpath(b), "out.bin"), "wb") as f:
        f.write(os.urandom(64) if c.nondet else f"{c.name}:{c.i}".encode())


def _dag(counter: str, nondet: bool, n: int, tag: str = "s", r: Any = None) -> DRef:
    """A closure of ``n`` stages: stage i needs i-1 and i//2 (a chain with long jumps)."""
    ds: list[DRef] = []
    for i in range(n):
        deps = sorted({ds[j] for j in {i - 1, i // 2} if 0 <= j < i})
        cfg = {"name": f"{tag}{i}", "i": i, "deps": deps, "counter": counter, "nondet": nondet}
        ds.append(mkdrv(cfg, match_only(), build_wrapper(_count_and_write), r))
    return ds[-1]


def _targets(counter: str, order: list[int], r: Any = None) -> list[DRef]:
    """Independent stages on one shared base, registered in the given order."""
    base = mkdrv({"name": "base", "counter": counter, "nondet": False, "i": -1}, match_only(),
                 build_wrapper(_count_and_write), r)  # fmt: skip
    return [
        mkdrv(
            {"name": f"t{i}", "i": i, "base": base, "counter": counter, "nondet": True},
            match_only(),
            build_wrapper(_count_and_write),
            r,
        )
        for i in order
    ]


def _realize_dag(root: str, counter: str, nondet: bool, jobs: int, start: Any, q: Any) -> None:
    """(child) Wait for the start signal, realize the 50-stage closure, send its context."""
    S = mkSS(root)
    clo = instantiate(_dag, counter, nondet, 50, S=S)
    start.wait(TIMEOUT)
    _, _, ctx = realize(clo, jobs=jobs)
    q.put({str(k): sorted(v) for k, v in ctx.items()})


def _realize_targets(root: str, counter: str, order: list[int], start: Any, q: Any) -> None:
    """(child) Realize independent targets in the given order (two jobs at once)."""
    S = mkSS(root)
    clo = instantiate(_targets, counter, order, S=S)
    start.wait(TIMEOUT)
    _, _, ctx = realize(clo, jobs=2)
    q.put({str(k): sorted(v) for k, v in ctx.items()})


def _run_all(procs: list[Any], start: Any, q: Any) -> list[dict[str, list[str]]]:
    for p in procs:
        p.start()
    start.set()
    results = [q.get(timeout=TIMEOUT) for _ in procs]
    for p in procs:
        p.join(TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return results


def _built(counter: str) -> Counter[str]:
    return Counter(n.split(".")[0] for n in os.listdir(counter))


@pytest.mark.parametrize("nondet", [False, True], ids=["deterministic", "random-output"])
def test_four_processes_build_each_of_50_stages_exactly_once(
    S: StorageSettings, tmp_path: Any, nondet: bool
) -> None:
    """4 processes realizing one closure at once: one build per stage, identical RRefs."""
    counter = str(tmp_path / "calls")
    os.mkdir(counter)
    start, q = CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(target=_realize_dag, args=(S.root, counter, nondet, 1 + i % 2, start, q))
        for i in range(4)
    ]
    results = _run_all(procs, start, q)
    assert results[1:] == results[:1] * 3
    assert len(results[0]) == 50
    assert all(len(v) == 1 for v in results[0].values())
    assert _built(counter) == Counter({f"s{i}": 1 for i in range(50)})
    assert len(list(allrrefs(S))) == 50
    assert verify(S=S).ok


def test_overlapping_closures_in_opposite_orders_finish(S: StorageSettings, tmp_path: Any) -> None:
    """Two processes taking the same 20 targets in opposite orders both finish, one build each."""
    counter = str(tmp_path / "calls")
    os.mkdir(counter)
    start, q = CTX.Event(), CTX.Queue()
    orders = [list(range(20)), list(reversed(range(20)))]
    procs = [
        CTX.Process(target=_realize_targets, args=(S.root, counter, o, start, q)) for o in orders
    ]
    a, b = _run_all(procs, start, q)
    assert a == b
    assert _built(counter) == Counter({"base": 1, **{f"t{i}": 1 for i in range(20)}})


def _realize_and_root(
    root: str, counter: str, worker: int, rounds: int, links: str, go: Any, q: Any
) -> None:
    """(child) Repeatedly realize; root each result while still protected; report what it got.

    Each round realizes a rooted closure (partly shared with the other workers)
    and an unrooted scratch closure, i.e. garbage for the collector.
    """
    S = mkSS(root)
    got: list[str] = []
    for k in range(rounds):
        keep = instantiate(_dag, counter, True, 6 + k, f"w{worker}r{k}-", S=S)
        shared = instantiate(_dag, counter, False, 4, f"shared{k}-", S=S)
        scratch = instantiate(_dag, counter, True, 3, f"scratch{worker}-{k}-", S=S)
        with gc_shared(S):
            for clo in (keep, shared):
                _, c, ctx = realize(clo)
                (t,) = ctx[c.targets[0]]
                link = os.path.join(links, f"{worker}-{k}-{len(got)}")
                os.symlink(rref2path(t, S), link)
                register_root(S, link)
                got.append(t)
            _, c, ctx = realize(scratch)
            missing = [r for v in ctx.values() for r in v if not os.path.isdir(rref2path(r, S))]
            if missing:
                raise AssertionError(f"{missing} vanished during the realize that used them")
        go.put(worker)
    q.put(got)


def _collect_loop(root: str, go: Any, out: Any) -> None:
    """(child) Collect garbage after every round some worker finishes, until told to stop."""
    S = mkSS(root)
    runs = deleted = 0
    while True:
        msg = go.get(timeout=TIMEOUT)
        if msg == "stop":
            break
        res = gc(S)
        runs += 1
        deleted += len(res.deleted_rrefs)
    out.put((runs, deleted))


def test_gc_in_a_loop_never_removes_what_concurrent_realizes_need(
    S: StorageSettings, tmp_path: Any
) -> None:
    """3 realizing processes and a collecting one: all succeed and every rooted result survives."""
    counter, links = str(tmp_path / "calls"), str(tmp_path / "links")
    os.mkdir(counter)
    os.mkdir(links)
    go, q, out = CTX.Queue(), CTX.Queue(), CTX.Queue()
    collector = CTX.Process(target=_collect_loop, args=(S.root, go, out))
    collector.start()
    workers = [
        CTX.Process(target=_realize_and_root, args=(S.root, counter, w, 4, links, go, q))
        for w in range(3)
    ]
    for p in workers:
        p.start()
    got: list[RRef] = [r for _ in workers for r in q.get(timeout=TIMEOUT)]
    for p in workers:
        p.join(TIMEOUT)
    go.put("stop")
    runs, _ = out.get(timeout=TIMEOUT)
    collector.join(TIMEOUT)
    assert [p.exitcode for p in [*workers, collector]] == [0, 0, 0, 0]
    assert runs == 12
    kept = {r for t in got for r in {t, *rrefdeps([t], S)}}
    final = gc(S)
    assert all(os.path.isdir(rref2path(r, S)) for r in kept)
    assert set(allrrefs(S)) == kept
    assert not any(r in kept for r in final.deleted_rrefs)
    assert os.listdir(S.tmpdir) == []
    assert verify(S=S).ok

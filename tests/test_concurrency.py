"""Many real processes on one store: one build per derivation, same RRefs, GC never in the way."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
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
    realize1,
    rref2path,
    rrefdeps,
    verify,
)
from pylightnix.store.roots import list_roots, register_root
from pylightnix.store.temproots import release_temproots
from pylightnix.types import DRef, RRef

CTX = multiprocessing.get_context("spawn")
PIPELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli", "pipeline.py")
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
    """(child) Repeatedly realize; root each result later; report what it got.

    Each round realizes a rooted closure (partly shared with the other workers)
    and an unrooted scratch closure, i.e. garbage for the collector.
    """
    S = mkSS(root)
    got: list[str] = []
    for k in range(rounds):
        keep = instantiate(_dag, counter, True, 6 + k, f"w{worker}r{k}-", S=S)
        shared = instantiate(_dag, counter, False, 4, f"shared{k}-", S=S)
        scratch = instantiate(_dag, counter, True, 3, f"scratch{worker}-{k}-", S=S)
        # No lock is held: what realize returns stays alive (temporary roots)
        # until the process ends, so linking it later has no window.
        for clo in (keep, shared):
            _, c, ctx = realize(clo)
            (t,) = ctx[c.targets[0]]
            link = os.path.join(links, f"{worker}-{k}-{len(got)}")
            os.symlink(rref2path(t, S), link)
            register_root(S, link)
            got.append(t)
        _, c, ctx = realize(scratch)
        go.put(worker)
        missing = [r for v in ctx.values() for r in v if not os.path.isdir(rref2path(r, S))]
        if missing:
            raise AssertionError(f"{missing} vanished although this process realized them")
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
    assert os.listdir(os.path.join(S.storage, ".temproots")) == []
    assert verify(S=S).ok


def _blocking_build(b: Build) -> None:
    """Realizer: say it started through one FIFO, then wait to be released through another."""
    c = build_cattrs(b)
    with open(c.started, "w") as f:
        f.write("started\n")
    with open(c.release) as f:
        f.read()
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("long")


def _long_stage(fifos: str, r: Any = None) -> DRef:
    dep = mkdrv({"name": "input", "i": 0}, match_only(), build_wrapper(_write_i), r)
    cfg = {
        "name": "long",
        "dep": dep,
        "started": os.path.join(fifos, "started"),
        "release": os.path.join(fifos, "release"),
    }
    return mkdrv(cfg, match_only(), build_wrapper(_blocking_build), r)


def _write_i(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(f"{build_cattrs(b).name}:{build_cattrs(b).i}")


def _trivial(i: int, r: Any = None) -> DRef:
    return mkdrv({"name": "trivial", "i": i}, match_only(), build_wrapper(_write_i), r)


def _realize_long(root: str, fifos: str, q: Any) -> None:
    """(child) Realize the long stage (it blocks in its realizer until released)."""
    S = mkSS(root)
    _, _, ctx = realize(instantiate(_long_stage, fifos, S=S))
    q.put({str(k): sorted(v) for k, v in ctx.items()})


def _timed_gc(root: str, q: Any) -> None:
    """(child) Collect garbage once; report how long it took and what it deleted."""
    S = mkSS(root)
    t0 = time.monotonic()
    res = gc(S)
    q.put(("gc", time.monotonic() - t0, sorted(res.deleted_rrefs)))


def _timed_trivial(root: str, q: Any) -> None:
    """(child) Realize a trivial stage; report how long it took and whether its result is
    stored (once this process exits, the result is garbage like any other)."""
    S = mkSS(root)
    t0 = time.monotonic()
    _, c, ctx = realize(instantiate(_trivial, 1, S=S))
    dt = time.monotonic() - t0
    q.put(("trivial", dt, [os.path.isdir(rref2path(r, S)) for r in ctx[c.targets[0]]]))


def test_gc_and_a_trivial_realize_never_wait_for_a_long_build(
    S: StorageSettings, tmp_path: Any
) -> None:
    """A build blocked in its realizer delays neither a gc nor a trivial realize in other
    processes, and the gc keeps what the build uses (its input) and will insert into."""
    fifos = str(tmp_path / "fifos")
    os.mkdir(fifos)
    os.mkfifo(os.path.join(fifos, "started"))
    os.mkfifo(os.path.join(fifos, "release"))
    old = realize1(instantiate(_trivial, 0, S=S))  # garbage once this process lets it go
    release_temproots(S)
    q = CTX.Queue()
    builder = CTX.Process(target=_realize_long, args=(S.root, fifos, q))
    builder.start()
    with open(os.path.join(fifos, "started")) as f:
        assert f.read() == "started\n"  # the build is running and stays blocked
    try:
        procs = [
            CTX.Process(target=_timed_gc, args=(S.root, q)),
            CTX.Process(target=_timed_trivial, args=(S.root, q)),
        ]
        for p in procs:
            p.start()
        got = {m[0]: m for m in (q.get(timeout=TIMEOUT), q.get(timeout=TIMEOUT))}
        for p in procs:
            p.join(TIMEOUT)
        assert [p.exitcode for p in procs] == [0, 0]
        assert builder.is_alive()  # both finished while the build was still blocked
        _, _, deleted = got["gc"]
        assert old in deleted
        inputs = [r for r in allrrefs(S) if "-input" in r]
        assert len(inputs) == 1  # the running build's context survived the collection
        assert got["trivial"][2] == [True]
    finally:
        with open(os.path.join(fifos, "release"), "w") as f:
            f.write("go\n")
    ctx = q.get(timeout=TIMEOUT)
    builder.join(TIMEOUT)
    assert builder.exitcode == 0
    assert all(os.path.isdir(rref2path(RRef(r), S)) for v in ctx.values() for r in v)


def _no_count(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.bin"), "w") as f:
        f.write(build_cattrs(b).name)


def test_results_survive_a_gc_while_their_process_lives_and_go_after_it_exits(
    S: StorageSettings,
) -> None:
    """What a live process realized survives another process's gc; after it exits, gc takes it."""
    q, leave = CTX.Queue(), CTX.Event()
    holder = CTX.Process(target=_realize_and_hold_nc, args=(S.root, q, leave))
    holder.start()
    rref = RRef(q.get(timeout=TIMEOUT))
    closure = {rref, *rrefdeps([rref], S)}
    g = CTX.Process(target=_timed_gc, args=(S.root, q))
    g.start()
    _, _, deleted = q.get(timeout=TIMEOUT)
    g.join(TIMEOUT)
    assert deleted == []
    assert set(allrrefs(S)) == closure
    leave.set()
    holder.join(TIMEOUT)
    assert holder.exitcode == 0
    assert set(gc(S).deleted_rrefs) == closure
    assert list(allrrefs(S)) == []
    assert os.listdir(os.path.join(S.storage, ".temproots")) == []


def _chain_nc(n: int, r: Any = None) -> DRef:
    d = mkdrv({"name": "held0"}, match_only(), build_wrapper(_no_count), r)
    for i in range(1, n):
        d = mkdrv({"name": f"held{i}", "dep": d}, match_only(), build_wrapper(_no_count), r)
    return d


def _realize_and_hold_nc(root: str, q: Any, leave: Any) -> None:
    """(child) Realize a 3-stage chain, report its result, then live until told to leave."""
    S = mkSS(root)
    q.put(str(realize1(instantiate(_chain_nc, 3, S=S))))
    leave.wait(TIMEOUT)


def _gc_until(root: str, stop: Any, q: Any) -> None:
    """(child) Collect garbage back to back until told to stop (at most 10,000 times)."""
    S = mkSS(root)
    runs = 0
    while not stop.is_set() and runs < 10_000:
        gc(S)
        runs += 1
    q.put(runs)


def test_realize_o_under_a_gc_loop_never_loses_its_result(
    S: StorageSettings, tmp_path: Any
) -> None:
    """`realize -o` beside a collecting loop always links a stored result, round after round
    (each round drops the previous link, so its result is garbage again)."""
    stop, q = CTX.Event(), CTX.Queue()
    looper = CTX.Process(target=_gc_until, args=(S.root, stop, q))
    looper.start()
    try:
        for k in range(4):
            link = str(tmp_path / f"result-{k}")
            p = subprocess.run(
                [sys.executable, "-m", "pylightnix", "--store", S.root, "realize",
                 f"{PIPELINE}:report", "-o", link, "--no-progress"],
                capture_output=True, text=True, timeout=TIMEOUT, check=False,
                env={k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")},
            )  # fmt: skip
            assert p.returncode == 0, p.stderr
            assert os.path.isfile(os.path.join(link, "report.txt"))
            if k < 3:
                os.unlink(link)
    finally:
        stop.set()
    runs = q.get(timeout=TIMEOUT)
    looper.join(TIMEOUT)
    assert looper.exitcode == 0
    assert runs > 0
    last = str(tmp_path / "result-3")
    assert [str(rt.link) for rt in list_roots(S)] == [last]
    assert gc(S).deleted_rrefs == ()
    assert os.path.isfile(os.path.join(last, "report.txt"))


def _fresh(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.bin"), "wb") as f:
        f.write(os.urandom(16))


def _latest_pair(r: Any = None) -> DRef:
    """A match_latest stage and a stage that needs it (rebuilt for each new input)."""
    from pylightnix import match_latest

    a = mkdrv({"name": "latest"}, match_latest(1), build_wrapper(_fresh), r)
    return mkdrv({"name": "user", "a": a}, match_only(), build_wrapper(_fresh), r)


def _insert_paused(root: str, fifos: str, q: Any) -> None:
    """(child) Rebuild the match_latest stage, stopping between its index line and the
    rename that puts its folder in place until the test releases it."""
    import pylightnix.store.insert as insert

    rename = insert.__dict__["rename_noreplace"]

    def paused(src: str, dst: str) -> bool:
        if "-latest" + os.sep in dst:
            with open(os.path.join(fifos, "started"), "w") as f:
                f.write("indexed\n")
            with open(os.path.join(fifos, "release")) as f:
                assert f.read() == "go\n"
        return bool(rename(src, dst))

    insert.__dict__["rename_noreplace"] = paused
    S = mkSS(root)
    _, clo = instantiate(_latest_pair, S=S)
    _, _, ctx = realize(clo, force_rebuild=[clo.derivations[0].dref])
    q.put(ctx[clo.derivations[0].dref])


def _noop_pair(root: str, q: Any) -> None:
    """(child) Realize the pair with nothing to build (a new process: nothing known yet)."""
    S = mkSS(root)
    _, clo = instantiate(_latest_pair, S=S)
    _, _, ctx = realize(clo, assert_realized=[d.dref for d in clo.derivations])
    q.put({str(k): sorted(v) for k, v in ctx.items()})


def test_a_realize_never_takes_an_insertion_in_flight(S: StorageSettings, tmp_path: Any) -> None:
    """While another process has indexed a newer realization of a match_latest stage but
    not yet renamed it in, a no-op realize in a third process picks the newest one in
    place and builds nothing; once it lands, the next realize picks it."""
    from tests.helpers import index_lines

    fifos = str(tmp_path / "fifos")
    os.mkdir(fifos)
    os.mkfifo(os.path.join(fifos, "started"))
    os.mkfifo(os.path.join(fifos, "release"))
    _, clo = instantiate(_latest_pair, S=S)
    a, b = (d.dref for d in clo.derivations)
    _, _, before = realize(clo)
    q = CTX.Queue()
    inserter = CTX.Process(target=_insert_paused, args=(S.root, fifos, q))
    inserter.start()
    try:
        with open(os.path.join(fifos, "started")) as f:
            assert f.read() == "indexed\n"
        # The new line ranks first and has no folder yet.
        assert len(index_lines(S.storage, a, "R")) == 2
        assert len([r for r in allrrefs(S) if r.endswith("-latest")]) == 1
        noop = CTX.Process(target=_noop_pair, args=(S.root, q))
        noop.start()
        noop.join(TIMEOUT)  # what it sends is small: it can exit before it is read
        assert noop.exitcode == 0
        got = q.get(timeout=TIMEOUT)
        assert got == {str(k): sorted(v) for k, v in before.items()}
    finally:
        with open(os.path.join(fifos, "release"), "w") as f:
            f.write("go\n")
    (new,) = q.get(timeout=TIMEOUT)
    inserter.join(TIMEOUT)
    assert inserter.exitcode == 0
    _, _, after = realize(clo)
    assert after[a] == [new] and new not in before[a] and after[b] != before[b]

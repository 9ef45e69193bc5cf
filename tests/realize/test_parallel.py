"""The parallel coordinator: only builds become tasks, nouts outputs in parallel, busy locks."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from pylightnix import (
    BuildError,
    ClusterError,
    ProgressEvent,
    StorageSettings,
    allrrefs,
    autostage,
    drefrrefs,
    fsinit,
    instantiate,
    mkSS,
    realize,
    rref2path,
    selfref,
)
from pylightnix.autostage import AutoRealizer
from pylightnix.realize.parallel import split_outputs
from pylightnix.store.locks import build_lock
from tests.realize.test_dask import _diamond, read

BARRIER: list[threading.Barrier] = []


@autostage(nouts=3)
def meeting(out: Any = [selfref, "o.txt"], rindex: int = 0) -> None:  # noqa: B006
    BARRIER[0].wait()  # raises BrokenBarrierError unless all three outputs build at once
    with open(out, "w") as f:
        f.write(str(rindex))


@autostage(nouts=3)
def one_bad(out: Any = [selfref, "o.txt"], rindex: int = 0) -> None:  # noqa: B006
    if rindex == 1:
        raise ValueError("output 1 is bad")
    with open(out, "w") as f:
        f.write(str(rindex))


def test_split_outputs_gives_one_realizer_per_output() -> None:
    """An autostage of nouts=3 splits into three realizers; nouts=1 does not split."""
    r = AutoRealizer(meeting)
    assert split_outputs(r) == [AutoRealizer(meeting, i) for i in range(3)]
    assert split_outputs(AutoRealizer(meeting, 1)) is None
    assert repr(AutoRealizer(meeting, 2)) == "AutoRealizer(meeting, output 2)"


def test_nouts_outputs_build_at_once_with_jobs_3(S: StorageSettings) -> None:
    """With jobs=3 the three calls of a nouts=3 stage run at the same time (a barrier of 3)."""
    BARRIER[:] = [threading.Barrier(3, timeout=30)]
    _, _, ctx = realize(instantiate(meeting, S=S), jobs=3)
    (rrefs,) = ctx.values()
    assert sorted(read(rref2path(r, S), "o.txt") for r in rrefs) == ["0", "1", "2"]


def test_a_failed_output_of_a_split_build_stores_none(S: StorageSettings) -> None:
    """One output of a split build raising fails the build; no output enters the store."""
    _, clo = instantiate(one_bad, S=S)
    (dref,) = clo.targets
    with pytest.raises(BuildError) as ei:
        realize(clo, jobs=3)
    assert str(ei.value) == (
        f"building stage 'one_bad' ({dref}) failed: ValueError: output 1 is bad"
    )
    assert drefrrefs(dref, S) == []
    assert os.listdir(S.tmpdir) == []


def test_a_busy_build_lock_does_not_stall_other_builds(S: StorageSettings) -> None:
    """While another holder has one stage's build lock, independent stages still build."""
    _, clo = instantiate(_diamond, S=S)
    top = next(d.dref for d in clo.derivations if d.dref.endswith("-top"))
    unrelated = instantiate(meeting, S=S)[1].derivations[0]
    both = type(clo)(clo.result, clo.targets, (*clo.derivations, unrelated), S)
    BARRIER[:] = [threading.Barrier(3, timeout=30)]
    out: dict[str, Any] = {}
    with build_lock(S, top):
        t = threading.Thread(target=lambda: out.update(ctx=realize(both, jobs=3)[2]))
        t.start()
        deadline = time.monotonic() + 60
        while len(drefrrefs(unrelated.dref, S)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(drefrrefs(unrelated.dref, S)) == 3
        assert drefrrefs(top, S) == []
    t.join(60)
    assert not t.is_alive()
    assert len(out["ctx"]) == 5
    assert len(drefrrefs(top, S)) == 1


def test_remote_needs_workers_in_other_processes(S: StorageSettings, tmp_path: Any) -> None:
    """realize(remote=...) with threads of this process is refused before anything runs."""
    cache = str(tmp_path / "cache")
    with pytest.raises(ClusterError) as ei:
        realize(instantiate(_diamond, S=S), jobs=2, remote=cache)
    assert str(ei.value) == (
        f"realize(remote={cache!r}) needs an executor whose workers run elsewhere "
        "(a distributed.Client or a ProcessPoolExecutor), not threads of this process"
    )
    assert list(allrrefs(S)) == []


def test_parallel_realize_pushes_and_substitutes(S: StorageSettings, tmp_path: Any) -> None:
    """With jobs=2, push_to pushes each build; another store substitutes them all, building none."""
    cache = str(tmp_path / "cache")
    _, _, ctx = realize(instantiate(_diamond, S=S), jobs=2, push_to=cache)
    S2 = fsinit(mkSS(str(tmp_path / "second")))
    events: list[ProgressEvent] = []
    _, _, ctx2 = realize(
        instantiate(_diamond, S=S2), jobs=2, substituters=[cache], progress=events.append
    )
    assert ctx2 == ctx
    assert sorted(e.extra["reason"] for e in events if e.kind == "reuse") == ["substituted"] * 4
    assert [e for e in events if e.kind == "build"] == []

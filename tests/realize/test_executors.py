"""Executors: builds in other processes (ProcessPoolExecutor), pickling of realizers."""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from pylightnix import (
    Build,
    ClusterError,
    StorageSettings,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    rref2path,
    rreflog,
)
from pylightnix.realize.executors import dumps_realizer, is_dask_client, open_backend
from pylightnix.types import DRef
from tests.realize.test_dask import _diamond, _victim_stage, kill_mid_build, log_pid, read, seeds


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Two worker processes for the module."""
    with ProcessPoolExecutor(2) as ex:
        yield ex


def test_process_pool_builds_in_its_processes(
    pool: ProcessPoolExecutor, S: StorageSettings, tmp_path: Any
) -> None:
    """With a ProcessPoolExecutor every realizer runs in a pool process; RRefs equal jobs=1."""
    _, clo = instantiate(_diamond, S=S)
    _, _, ctx = realize(clo, executor=pool)
    for (rref,) in ctx.values():
        assert log_pid(rref, S) != os.getpid()
        name = rref.rsplit("-", 1)[1]
        # One task per process at a time: fd-level capture, subprocess output included.
        assert rreflog(rref, S).splitlines()[1] == f"shell in {name}"
    S1 = fsinit(mkSS(os.path.join(tmp_path, "seq")))
    assert realize(instantiate(_diamond, S=S1))[2] == ctx


def test_process_pool_builds_nouts_outputs_as_tasks(
    pool: ProcessPoolExecutor, S: StorageSettings
) -> None:
    """The three outputs of a nouts=3 autostage are built by pool processes, logs apart."""
    _, _, ctx = realize(instantiate(seeds, S=S), executor=pool)
    (rrefs,) = ctx.values()
    assert sorted(read(rref2path(r, S), "seed.txt") for r in rrefs) == [
        "seed 0",
        "seed 1",
        "seed 2",
    ]
    for r in rrefs:
        assert rreflog(r, S) == f"pid {log_pid(r, S)}\n"
        assert log_pid(r, S) != os.getpid()


def _lambda_stage() -> DRef:
    word = "closure"
    return mkdrv(
        {"name": "lam"},
        match_only(),
        build_wrapper(lambda b: open(os.path.join(build_outpath(b), "w"), "w").write(word)),
    )


def test_a_lambda_realizer_crosses_with_cloudpickle(
    pool: ProcessPoolExecutor, S: StorageSettings
) -> None:
    """A lambda closing over a local variable builds in a pool process (cloudpickle)."""
    _, _, ctx = realize(instantiate(_lambda_stage, S=S), executor=pool)
    ((rref,),) = ctx.values()
    assert read(rref2path(rref, S), "w") == "closure"


class _Locked:
    """A realizer holding a lock: neither pickle nor cloudpickle can ship it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, S: Any, dref: Any, ctx: Any, args: Any) -> list[Any]:
        raise AssertionError("never runs")

    def __repr__(self) -> str:
        return "_Locked()"


def test_an_unpicklable_realizer_is_refused_naming_the_stage(
    pool: ProcessPoolExecutor, S: StorageSettings
) -> None:
    """A realizer that cannot be pickled fails with ClusterError naming its stage; nothing runs."""
    _, clo = instantiate(lambda: mkdrv({"name": "locked"}, match_only(), _Locked()), S=S)
    (dref,) = clo.targets
    with pytest.raises(ClusterError) as ei:
        realize(clo, executor=pool)
    assert str(ei.value) == (
        f"the realizer _Locked() of stage 'locked' ({dref}) cannot be pickled to run in "
        "another process (TypeError: cannot pickle '_thread.lock' object): make it a "
        "module-level function or a small class, or realize with jobs=N (threads)"
    )
    assert os.listdir(S.tmpdir) == []


def _named(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "n"), "w") as f:
        f.write(build_cattrs(b).name)


def test_dumps_realizer_uses_plain_pickle_for_module_level_code() -> None:
    """A module-level realizer is pickled by reference, loadable with plain pickle."""
    r = build_wrapper(_named)
    data = dumps_realizer(r, DRef("dref:" + "0" * 32 + "-x"))
    assert data == pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == r


def test_open_backend_refuses_other_objects() -> None:
    """realize(executor=...) takes Executors and Dask clients only."""
    with pytest.raises(ClusterError) as ei:
        open_backend(object(), 1)
    assert str(ei.value).startswith("realize(executor=<object object at ")
    assert str(ei.value).endswith(
        ">): expected a concurrent.futures.Executor or a distributed.Client"
    )
    assert not is_dask_client(ThreadPoolExecutor())


def test_a_pool_process_killed_mid_build_gives_a_clear_error(
    S: StorageSettings, tmp_path: Any
) -> None:
    """SIGKILL of the pool process building a stage: ClusterError naming it, nothing stored."""
    dref = instantiate(_victim_stage, S=S)[1].targets[0]
    with ProcessPoolExecutor(1) as ex:
        out = kill_mid_build(S, ex, str(tmp_path / "ctl"), lambda pid: None)
    e = out["error"]
    assert type(e) is ClusterError
    assert str(e).startswith(
        f"the ProcessPoolExecutor task building stage 'victim' ({dref}) failed: BrokenProcessPool: "
    )
    assert str(e).endswith(
        " (a worker died or the task could not run there; nothing of this build entered "
        "the store: realize again to retry)"
    )
    assert list(allrrefs(S)) == []

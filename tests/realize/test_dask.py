"""Dask as the engine: builds on the workers of a real LocalCluster of worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from distributed import Client, LocalCluster, get_task_stream
from pylightnix import (
    Build,
    BuildError,
    BuildsFailedError,
    ClusterError,
    ProgressEvent,
    StorageSettings,
    allrrefs,
    autostage,
    build_cattrs,
    build_outpath,
    build_wrapper,
    drefrrefs,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    rref2path,
    rreflog,
    selfref,
)
from pylightnix.realize.dask import connect, disconnect
from pylightnix.remote import open_remote, pull
from pylightnix.store.verify import verify
from pylightnix.types import DRef
from tests.remote.conftest import new_bucket, s3_endpoint, s3_options  # noqa: F401 - fixture

CLUSTER = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "processes": True,
    "host": "127.0.0.1",
    "dashboard_address": ":0",
}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, for the module."""
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as c:
        yield c


def worker_pids(client: Client) -> set[int]:
    return set(client.run(os.getpid).values())


def _write(b: Build) -> None:
    c = build_cattrs(b)
    print(f"pid {os.getpid()}")
    subprocess.run(["echo", f"shell in {c.name}"], check=True)
    with open(os.path.join(build_outpath(b), "v.txt"), "w") as f:
        f.write(f"{c.name}:{c.deps}")


def _top() -> DRef:
    return mkdrv({"name": "top", "deps": []}, match_only(), build_wrapper(_write))


def _diamond() -> list[DRef]:
    top = _top()
    left = mkdrv({"name": "left", "deps": [top]}, match_only(), build_wrapper(_write))
    right = mkdrv({"name": "right", "deps": [top]}, match_only(), build_wrapper(_write))
    return [mkdrv({"name": "bottom", "deps": [left, right]}, match_only(), build_wrapper(_write))]


@autostage(nouts=3)
def seeds(out: Any = [selfref, "seed.txt"], rindex: int = 0) -> None:  # noqa: B006
    print(f"pid {os.getpid()}")
    with open(out, "w") as f:
        f.write(f"seed {rindex}")


def log_pid(rref: Any, S: StorageSettings) -> int:
    first = rreflog(rref, S).splitlines()[0]
    assert first.startswith("pid ")
    return int(first[4:])


def read(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


def other_store(tmp_path: Any, name: str) -> StorageSettings:
    return fsinit(mkSS(os.path.join(tmp_path, name)))


def test_diamond_builds_on_workers_like_jobs_1(
    client: Client, S: StorageSettings, tmp_path: Any
) -> None:
    """Worker processes build a diamond (logs hold subprocess output) as jobs=1 builds it."""
    _, clo = instantiate(_diamond, S=S)
    _, _, ctx = realize(clo, executor=client)
    pids = worker_pids(client)
    for rrefs in ctx.values():
        (rref,) = rrefs
        assert log_pid(rref, S) in pids
        assert log_pid(rref, S) != os.getpid()
        name = rref.rsplit("-", 1)[1]
        assert rreflog(rref, S).splitlines()[1] == f"shell in {name}"
    S1 = other_store(tmp_path, "seq")
    _, clo1 = instantiate(_diamond, S=S1)
    assert realize(clo1)[2] == ctx
    assert verify(None, S).damaged == ()


def test_nouts_sweep_runs_one_task_per_output(
    client: Client, S: StorageSettings, tmp_path: Any
) -> None:
    """A 3-seed nouts sweep runs as three tasks on workers, with the RRefs of jobs=1."""
    events: list[ProgressEvent] = []
    _, clo = instantiate(seeds, S=S)
    _, _, ctx = realize(clo, executor=client, progress=events.append)
    (rrefs,) = ctx.values()
    assert sorted(read(rref2path(r, S), "seed.txt") for r in rrefs) == [
        "seed 0",
        "seed 1",
        "seed 2",
    ]
    assert {log_pid(r, S) for r in rrefs} <= worker_pids(client)
    running = sorted(e.extra["output"] for e in events if e.kind == "running")
    assert running == [0, 1, 2]
    S1 = other_store(tmp_path, "seq")
    assert realize(instantiate(seeds, S=S1))[2] == ctx


def test_a_cached_closure_submits_no_task(client: Client, S: StorageSettings) -> None:
    """Re-realizing a built closure on Dask decides everything here: the scheduler sees no task."""
    _, clo = instantiate(_diamond, S=S)
    _, _, ctx = realize(clo, executor=client)
    with get_task_stream(client) as ts:
        _, _, again = realize(clo, executor=client)
    assert again == ctx
    assert ts.data == []
    bottom = clo.targets[0]
    with get_task_stream(client) as ts:
        realize(clo, executor=client, force_rebuild=[bottom])
    assert [t["key"].split("-")[0] for t in ts.data] == ["run_build_task"]


def _flaky(b: Build) -> None:
    print(f"pid {os.getpid()}")
    print(f"about to fail in {build_cattrs(b).name}")
    if b.realize_args.get("fail"):
        raise RuntimeError(f"{build_cattrs(b).name} broke")
    with open(os.path.join(build_outpath(b), "v.txt"), "w") as f:
        f.write("ok")


def _branches() -> list[DRef]:
    good = mkdrv({"name": "good"}, match_only(), build_wrapper(_flaky))
    bad1 = mkdrv({"name": "bad1"}, match_only(), build_wrapper(_flaky))
    bad2 = mkdrv({"name": "bad2"}, match_only(), build_wrapper(_flaky))
    after = mkdrv({"name": "after", "deps": [bad1]}, match_only(), build_wrapper(_flaky))
    return [good, after, bad2]


def test_a_failing_branch_keeps_what_finished(client: Client, S: StorageSettings) -> None:
    """One failed build raises its BuildError naming the worker; finished builds stay stored."""
    _, clo = instantiate(_branches, S=S)
    good, after, bad2 = clo.targets
    bad1 = next(d.dref for d in clo.derivations if d.dref.endswith("-bad1"))
    with pytest.raises(BuildError) as ei:
        realize(clo, executor=client, realize_args={bad1: {"fail": True}})
    e = ei.value
    assert type(e) is BuildError
    assert str(e) == f"building stage 'bad1' ({bad1}) failed: RuntimeError: bad1 broke"
    notes = e.__notes__
    assert notes[-1].startswith("pylightnix: the build ran on tcp://127.0.0.1:")
    assert "last 2 lines of the build log:\n  | pid " in "\n".join(notes)
    assert notes[1].endswith("  | about to fail in bad1")
    assert drefrrefs(after, S) == []
    assert drefrrefs(bad1, S) == []
    built = {d for d in (good, bad2) if drefrrefs(d, S)}
    with get_task_stream(client) as ts:
        _, _, ctx = realize(clo, executor=client)
    assert len(ts.data) == 4 - len(built)
    assert set(ctx) == {good, bad1, bad2, after}


def test_several_failures_are_listed_in_one_error(client: Client, S: StorageSettings) -> None:
    """Two failed builds give one BuildsFailedError listing each with worker and log tail."""
    _, clo = instantiate(_branches, S=S)
    bad = {d.dref.rsplit("-", 1)[1]: d.dref for d in clo.derivations}
    args = {bad["bad1"]: {"fail": True}, bad["bad2"]: {"fail": True}}
    with pytest.raises(BuildsFailedError) as ei:
        realize(clo, executor=client, realize_args=args)
    fs = ei.value.failures
    assert sorted(f["stage"] for f in fs) == ["bad1", "bad2"]
    parts = [
        f"  stage '{f['stage']}' ({f['dref']}) on {f['worker']}: BuildError: building stage "
        f"'{f['stage']}' ({f['dref']}) failed: RuntimeError: {f['stage']} broke"
        f"\n    | {f['tail'][0]}\n    | about to fail in {f['stage']}"
        for f in fs
    ]
    assert str(ei.value) == "2 builds failed:\n" + "\n".join(parts)
    assert all(re.fullmatch(r"tcp://127\.0\.0\.1:\d+ \(.+ pid \d+\)", f["worker"]) for f in fs)
    assert drefrrefs(bad["after"], S) == []


def _victim(b: Build) -> None:
    d = b.realize_args["dir"]
    n = len([x for x in os.listdir(d) if x.startswith("attempt-")])
    with open(os.path.join(d, "pid.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(d, "pid.tmp"), os.path.join(d, f"attempt-{n}"))  # seen whole
    with open(os.path.join(build_outpath(b), "partial.txt"), "w") as f:
        f.write("half")
    if n == 0:
        with open(os.path.join(d, "fifo")) as f:  # blocks until the test kills this worker
            f.read()
    with open(os.path.join(build_outpath(b), "done.txt"), "w") as f:
        f.write(f"attempt {n}")


def _victim_stage() -> DRef:
    return mkdrv({"name": "victim"}, match_only(), build_wrapper(_victim))


def kill_mid_build(
    S: StorageSettings, executor: Any, d: str, check: Callable[[int], None]
) -> dict[str, Any]:
    """Realize the victim stage on ``executor`` in a thread, SIGKILL the process of its
    first attempt once it runs (after ``check(pid)``); return the context or the error."""
    os.mkdir(d)
    os.mkfifo(os.path.join(d, "fifo"))
    _, clo = instantiate(_victim_stage, S=S)
    (dref,) = clo.targets
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["ctx"] = realize(clo, executor=executor, realize_args={dref: {"dir": d}})[2]
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    first = os.path.join(d, "attempt-0")
    deadline = time.monotonic() + 60
    while not os.path.exists(first) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(first) as f:
        pid = int(f.read())
    check(pid)
    os.kill(pid, signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    return out


def test_a_worker_killed_mid_build_leaves_no_partial_realization(
    client: Client, S: StorageSettings, tmp_path: Any
) -> None:
    """SIGKILL of the worker running a build: Dask reruns it elsewhere; one complete realization."""
    dref = instantiate(_victim_stage, S=S)[1].targets[0]

    def check(pid: int) -> None:
        assert pid in worker_pids(client)
        assert drefrrefs(dref, S) == []

    out = kill_mid_build(S, client, str(tmp_path / "ctl"), check)
    assert "error" not in out, out.get("error")
    (rref,) = out["ctx"][dref]
    assert sorted(os.listdir(rref2path(rref, S))) == ["__pylightnix__", "done.txt", "partial.txt"]
    assert read(rref2path(rref, S), "done.txt") == "attempt 1"
    assert list(allrrefs(S)) == [rref]
    assert verify(None, S).damaged == ()


def test_workers_that_do_not_see_the_store_are_refused(S: StorageSettings, tmp_path: Any) -> None:
    """A worker in a mount namespace hiding the store fails the probe: nothing is built."""
    if subprocess.run(["unshare", "-Urm", "true"], check=False).returncode != 0:
        pytest.skip("unprivileged mount namespaces (unshare -Urm) are not available here")
    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as cluster,
        Client(cluster) as c,
    ):
        cmd = (
            f"mount -t tmpfs none {tmp_path} && exec {sys.executable} -m distributed.cli."
            f"dask_worker {cluster.scheduler_address} --nthreads 1 --no-dashboard --no-nanny "
            "--host 127.0.0.1"
        )
        w = subprocess.Popen(["unshare", "-Urm", "sh", "-c", cmd], stderr=subprocess.DEVNULL)
        try:
            c.wait_for_workers(1, timeout=60)
            _, clo = instantiate(_diamond, S=S)
            with pytest.raises(ClusterError) as ei:
                realize(clo, executor=c)
            (addr,) = c.scheduler_info()["workers"]
            head = f"the workers do not see the store {S.root} of this process:\n  {addr}: "
            tail = (
                ": No such file or directory\nmount the store at the same path on every "
                "worker (a shared filesystem), or pass remote=URL to exchange realizations "
                "through a remote cache"
            )
            probe = re.escape(f"cannot read {S.tmpdir}/") + r"probe-\d+-\w+/nonce"
            assert re.fullmatch(re.escape(head) + probe + re.escape(tail), str(ei.value))
            assert list(allrrefs(S)) == []
            assert os.listdir(S.tmpdir) == []
        finally:
            w.kill()
            w.wait(30)


def test_connect_refuses_a_bad_local_spec() -> None:
    """--dask local:N needs a positive N."""
    with pytest.raises(ClusterError) as ei:
        connect("local:zero")
    assert str(ei.value) == (
        "--dask 'local:zero': expected local:N with N a positive number of worker "
        "processes, e.g. local:4"
    )


def test_connect_local_starts_and_stops_a_cluster(S: StorageSettings) -> None:
    """connect('local:1') gives a working client of one worker process; disconnect closes it."""
    c = connect("local:1")
    try:
        assert len(c.scheduler_info()["workers"]) == 1
        _, _, ctx = realize(instantiate(_diamond, S=S), executor=c)
        assert len(ctx) == 4
    finally:
        disconnect(c)
    assert c.status == "closed"


def _env_root() -> str | None:
    return os.environ.get("PYLIGHTNIX_ROOT")


def _diamond_and_seeds() -> list[Any]:
    return [*_diamond(), seeds()]


@pytest.mark.parametrize("kind", ["dir", "s3"])
def test_no_shared_filesystem_exchanges_through_a_remote(
    kind: str, S: StorageSettings, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """Workers with their own PYLIGHTNIX_ROOT pull inputs from and push outputs to a remote."""
    wroot = str(tmp_path / "worker-root")
    if kind == "dir":
        remote = open_remote(str(tmp_path / "cache"))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        remote = open_remote(f"s3://{new_bucket(endpoint)}/cache", **s3_options(endpoint))
    _, clo = instantiate(_diamond_and_seeds, S=S)
    top = next(d for d in clo.derivations if d.dref.endswith("-top"))
    # The coordinator has `top` already: it pushes it for the workers building on it.
    (top_rref,) = realize(instantiate(_top, S=S))[2][top.dref]
    with (
        LocalCluster(**CLUSTER, env={"PYLIGHTNIX_ROOT": wroot}) as cluster,
        Client(cluster) as c,
    ):
        assert set(c.run(_env_root).values()) == {wroot}
        assert os.environ["PYLIGHTNIX_ROOT"] != wroot
        _, _, ctx = realize(clo, executor=c, remote=remote)
        with get_task_stream(c) as ts:
            assert realize(clo, executor=c, remote=remote)[2] == ctx
        assert ts.data == []
        pids = worker_pids(c)
    S1 = other_store(tmp_path, "seq")
    assert realize(instantiate(_diamond_and_seeds, S=S1))[2] == ctx
    assert ctx[top.dref] == [top_rref]
    built = sorted(r for d, rs in ctx.items() if d != top.dref for r in rs)
    assert len(built) == 6
    assert {log_pid(r, S) for r in built} <= pids  # build logs travel with their realizations
    SW = mkSS(wroot)
    assert sorted(allrrefs(SW)) == sorted([*built, top_rref])
    assert sorted(allrrefs(S)) == sorted([*built, top_rref])
    assert verify(None, S).damaged == ()
    assert pull(built, remote, S=other_store(tmp_path, "third")).transferred != ()

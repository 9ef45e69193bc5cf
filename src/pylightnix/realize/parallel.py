"""Parallel realization: the coordinator decides, only builds become tasks.

With ``jobs>1`` or an ``executor`` (threads, another process, a Dask client;
see ``executors.py``) the closure's DAG is walked by one coordinator loop in
the calling thread. For each derivation whose dependencies are done it:

1. asks the matcher (:func:`~pylightnix.realize.step.decide`): a reuse, a
   dry run's answer or an ``assert_realized`` error never becomes a task, so
   a no-op realize of a cached closure submits nothing;
2. takes the derivation's build lock (without blocking the loop: a busy lock
   is waited for on a helper thread), asks the matcher again (another process
   may have built it meanwhile), and submits the build: one task, or one task
   per output when the realizer splits (``split_outputs()``, as
   ``@autostage(nouts=N)`` does) followed by one insertion task;
3. when the build's tasks are done, asks the matcher a third time (it must be
   satisfied), releases the lock and records the chosen RRefs.

The coordinator holds the build lock while the task runs on a worker, so a
derivation is built at most once at a time even when Dask reschedules the
task of a dead worker; the dead worker's temporary folder is never inserted
(insertion is one ``rename`` of a checked folder) and GC removes it later.

Failures: the first failed build (or coordinator-side error) stops
submitting; running builds finish (and are inserted); then one error is
raised: the failed build's own error (with notes naming the worker) when it
is the only one, else :class:`~pylightnix.errors.BuildsFailedError` listing
every failed stage with its worker and log tail.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pylightnix.errors import BuildsFailedError, ClusterError, LockError
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, current_hook, report
from pylightnix.realize.executors import Backend, dumps_realizer, open_backend
from pylightnix.realize.matchers import score_file
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.realize.step import (
    RealizeOptions,
    StepResult,
    context_of,
    decide,
    match_in,
    push_built,
    unsatisfied_after_build,
)
from pylightnix.realize.tasks import (
    BuildTask,
    TaskResult,
    run_build_task,
    run_insert_task,
    run_piece_task,
)
from pylightnix.refs import dref_name
from pylightnix.store.chosen import record_chosen
from pylightnix.store.fsops import remove_tree
from pylightnix.store.locks import build_lock
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Realizer, RRef

if TYPE_CHECKING:  # the remote layer loads only for realize(remote=...)
    from pylightnix.remote import Remote


def split_outputs(realizer: Realizer) -> list[Realizer] | None:
    """One realizer per output, if ``realizer`` offers them (``split_outputs()``)."""
    f = getattr(realizer, "split_outputs", None)
    if not callable(f):
        return None
    parts = f()
    return list(parts) if parts is not None and len(parts) > 1 else None


def _take_lock(S: StorageSettings, dref: DRef, timeout: float | None) -> contextlib.ExitStack:
    """Hold the build lock of ``dref`` until the returned stack is closed.

    The lock is a ``flock`` of this process, so another thread may release it.
    """
    st = contextlib.ExitStack()
    st.enter_context(build_lock(S, dref, timeout=timeout))
    return st


@dataclass
class _Build:
    """A build in flight: its lock, task and the results of its pieces."""

    drv: Derivation
    ctx: Context
    forced: bool
    task: BuildTask
    lock: contextlib.ExitStack
    pieces: list[TaskResult | None] = field(default_factory=list)
    pending: int = 0
    failed: bool = False


@dataclass(frozen=True)
class _Failure:
    drv: Derivation
    worker: str
    error: BaseException
    tail: tuple[str, ...] = ()


class _Coordinator:
    """The state of one parallel realize (see the module docstring)."""

    def __init__(
        self,
        c: Closure,
        S: StorageSettings,
        opts: RealizeOptions,
        backend: Backend,
        t0: float,
        remote: Remote | None = None,
        worker_root: str | None = None,
    ) -> None:
        self.c, self.S, self.opts, self.backend, self.t0 = c, S, opts, backend, t0
        self.remote, self.worker_root = remote, worker_root
        self.on_remote: set[RRef] = set()
        self.progress = current_hook() is not None
        self.chosen: Context = {}
        self.total = len(c.derivations)
        self.done = 0
        self.users: dict[DRef, list[Derivation]] = {d.dref: [] for d in c.derivations}
        self.waiting: dict[DRef, int] = {}
        for d in c.derivations:
            self.waiting[d.dref] = len(d.deps)
            for dep in d.deps:
                self.users[dep].append(d)
        self.ready = deque(d for d in c.derivations if self.waiting[d.dref] == 0)
        self.running: dict[Future[Any], tuple[str, Any]] = {}
        self.failures: list[_Failure] = []
        self.lock_pool: ThreadPoolExecutor | None = None
        self.pid = os.getpid()
        self.by_dref = {d.dref: d for d in c.derivations}
        self.pickled: dict[Realizer, bytes] = {}

    # -- progress and bookkeeping --------------------------------------------------

    def event(self, kind: str, drv: Derivation, rrefs: Any = (), **extra: Any) -> None:
        if self.progress:
            name = dref_name(drv.dref)
            el = time.monotonic() - self.t0
            report(ProgressEvent(kind, drv.dref, name, self.done, self.total, el, rrefs, extra))

    def finish(self, res: StepResult, worker: str | None = None) -> None:
        self.done += 1
        drv = self.by_dref[res.dref]
        if res.rrefs is not None:
            # As the sequential scheduler does: what the matcher picked, for `runs`.
            ctx = context_of(drv, self.chosen)
            if ctx is not None:
                chash = context_hash(ctx)
                record_chosen(
                    self.S, drv.dref, chash, res.rrefs, score_file=score_file(drv.matcher)
                )
            self.chosen[res.dref] = list(res.rrefs)
        kind = "built" if res.built else ("reuse" if res.rrefs is not None else "plan-build")
        extra: dict[str, Any] = {"reason": res.reason}
        if worker is not None:
            extra["worker"] = worker
        self.event(kind, drv, res.rrefs or (), **extra)
        for u in self.users[res.dref]:
            self.waiting[u.dref] -= 1
            if self.waiting[u.dref] == 0:
                self.ready.append(u)

    def fail(self, drv: Derivation, worker: str, e: BaseException, tail: Any = ()) -> None:
        self.failures.append(_Failure(drv, worker, e, tuple(tail)))
        self.event("fail", drv, error=f"{e}", worker=worker)
        self.ready.clear()

    # -- the loop --------------------------------------------------------------------

    def run(self) -> Context:
        try:
            while self.ready or self.running:
                while self.ready and not self.failures:
                    self.start(self.ready.popleft())
                if not self.running:
                    break
                fin, _ = wait(list(self.running), None, FIRST_COMPLETED)
                for fut in fin:
                    kind, obj = self.running.pop(fut)
                    self.complete(kind, obj, fut)
        finally:
            # Only reached with tasks in flight when the coordinator itself is
            # interrupted (KeyboardInterrupt): their builds stay locked until they end.
            if self.lock_pool is not None:
                self.lock_pool.shutdown(wait=False, cancel_futures=True)
        if self.failures:
            raise self.error()
        return self.chosen

    def start(self, drv: Derivation) -> None:
        ctx = context_of(drv, self.chosen)
        if ctx is None:
            self.finish(StepResult(drv.dref, None, False, "a dependency would be built"))
            return
        self.event("check", drv)
        try:
            decided = decide(drv, self.S, ctx, self.opts)
        except Exception as e:
            self.fail(drv, "coordinator", e)
            return
        if decided is not None:
            self.finish(decided)
            return
        try:
            lock = _take_lock(self.S, drv.dref, 0)
        except LockError:
            if self.lock_pool is None:
                self.lock_pool = ThreadPoolExecutor(4, thread_name_prefix="pylightnix-lock")
            fut = self.lock_pool.submit(_take_lock, self.S, drv.dref, None)
            self.running[fut] = ("lock", (drv, ctx))
            return
        self.locked(drv, ctx, lock)

    def locked(self, drv: Derivation, ctx: Context, lock: contextlib.ExitStack) -> None:
        """Build lock taken: ask again, then submit the build's tasks."""
        forced = self.opts.forced(drv.dref)
        try:
            if not forced:
                m = match_in(drv, self.S, context_hash(ctx))
                if m is not None:
                    lock.close()
                    self.finish(StepResult(drv.dref, tuple(m), False, "built by another process"))
                    return
            self.submit(drv, ctx, forced, lock)
        except Exception as e:
            lock.close()
            self.fail(drv, "coordinator", e)

    def submit(
        self, drv: Derivation, ctx: Context, forced: bool, lock: contextlib.ExitStack
    ) -> None:
        parts = split_outputs(drv.realizer)
        if self.remote is not None:
            self.share_context(ctx)
        elif not self.backend.in_process:
            self.backend.probe(self.S)
        task = BuildTask(
            drv.dref,
            drv.config,
            drv.promises,
            drv.deps,
            b"" if parts else self.pack(drv.realizer, drv.dref),  # pieces carry their own
            self.S,
            ctx,
            self.opts.realize_args.get(drv.dref, {}),
            self.opts.keep_failed,
            self.opts.show_log,
            self.pid,
            None,
            self.remote,
            self.worker_root,
        )
        # Every piece is pickled before any is submitted: a refusal submits nothing.
        pieces = [replace(task, realizer=self.pack(r, drv.dref), piece=i) for i, r in
                  enumerate(parts or ())]  # fmt: skip
        b = _Build(drv, ctx, forced, task, lock)
        self.event("build", drv, executor=self.backend.name)
        if not pieces:
            self.running[self.backend.submit(run_build_task, task)] = ("build", b)
            return
        b.pieces = [None] * len(pieces)
        b.pending = len(pieces)
        for i, t in enumerate(pieces):
            self.running[self.backend.submit(run_piece_task, t)] = ("piece", (b, i))

    def share_context(self, ctx: Context) -> None:
        """(no shared filesystem) Push what the build's context names and the remote lacks."""
        need = [r for rs in ctx.values() for r in rs if r not in self.on_remote]
        if need:
            from pylightnix.remote import push

            res = push(need, self.remote_(), S=self.S)
            self.on_remote.update(res.transferred, res.skipped)

    def remote_(self) -> Remote:
        if self.remote is None:
            raise ValueError("no remote")
        return self.remote

    def pack(self, r: Realizer, dref: DRef) -> Realizer | bytes:
        if self.backend.in_process:
            return r
        try:
            # Equal realizers (build_wrapper(f) of many stages) pickle alike: once per run.
            hit = self.pickled.get(r)
        except TypeError:  # unhashable
            return dumps_realizer(r, dref)
        if hit is None:
            hit = self.pickled[r] = dumps_realizer(r, dref)
        return hit

    def complete(self, kind: str, obj: Any, fut: Future[Any]) -> None:
        if kind == "lock":
            drv, ctx = obj
            try:
                lock = fut.result()
            except Exception as e:
                self.fail(drv, "coordinator", e)
                return
            if self.failures:
                lock.close()  # no new builds after a failure
                return
            self.locked(drv, ctx, lock)
            return
        b: _Build = obj[0] if kind == "piece" else obj
        res = self.result_of(b, fut)
        if kind == "piece":
            self.piece_done(b, obj[1], res)
            return
        self.build_done(b, res)

    def result_of(self, b: _Build, fut: Future[Any]) -> TaskResult:
        """The task's result; an executor-level failure becomes a failed result."""
        try:
            res = fut.result()
        except Exception as e:
            name = dref_name(b.drv.dref)
            err = ClusterError(
                f"the {self.backend.name} task building stage '{name}' ({b.drv.dref}) "
                f"failed: {type(e).__name__}: {e} (a worker died or the task could not run "
                "there; nothing of this build entered the store: realize again to retry)",
                dref=b.drv.dref,
            )
            err.__cause__ = e
            return TaskResult(self.backend.name, 0, error=err)
        if not isinstance(res, TaskResult):
            raise TypeError(f"a build task returned {res!r}")
        return res

    def piece_done(self, b: _Build, i: int, res: TaskResult) -> None:
        b.pieces[i] = res
        b.pending -= 1
        if res.error is not None and not b.failed:
            b.failed = True
            self.fail(b.drv, res.worker, _with_notes(res), res.tail)
        if b.pending:
            return
        if self.remote is not None:
            # Each piece was inserted and pushed by its worker (see tasks.run_piece_task).
            if not b.failed:
                rrefs = tuple(r for p in b.pieces if p is not None for r in p.rrefs)
                self.build_done(b, TaskResult(res.worker, res.pid, rrefs=rrefs))
            else:
                b.lock.close()
            return
        pieces = [p.piece for p in b.pieces if p is not None and p.piece is not None]
        if b.failed:
            if not self.opts.keep_failed:
                for p in pieces:
                    remove_tree(p.tmp)
            b.lock.close()
            return
        fut = self.backend.submit(run_insert_task, b.task, pieces)
        self.running[fut] = ("build", b)

    def build_done(self, b: _Build, res: TaskResult) -> None:
        try:
            if res.error is not None:
                self.fail(b.drv, res.worker, _with_notes(res), res.tail)
                return
            try:
                if self.remote is not None:
                    from pylightnix.remote import pull

                    pull(res.rrefs, self.remote, S=self.S)
                    self.on_remote.update(res.rrefs)
                m = match_in(b.drv, self.S, context_hash(b.ctx))
            except Exception as e:
                self.fail(b.drv, "coordinator", e)
                return
            if m is None:
                self.fail(b.drv, "coordinator", unsatisfied_after_build(b.drv))
                return
            if self.opts.push_to is not None:
                try:
                    push_built(b.drv, self.S, m, self.opts.push_to)
                except Exception as e:
                    self.fail(b.drv, "coordinator", e)
                    return
            why = "forced" if b.forced else "built"
            self.finish(StepResult(b.drv.dref, tuple(m), True, why), res.worker)
        finally:
            b.lock.close()

    def error(self) -> BaseException:
        if len(self.failures) == 1:
            f = self.failures[0]
            if f.worker != "coordinator":
                f.error.add_note(f"pylightnix: the build ran on {f.worker}")
            return f.error
        parts = []
        for f in self.failures:
            tail = "".join(f"\n    | {line}" for line in f.tail)
            parts.append(
                f"  stage '{dref_name(f.drv.dref)}' ({f.drv.dref}) on {f.worker}: "
                f"{type(f.error).__name__}: {f.error}{tail}"
            )
        first = self.failures[0]
        exc = BuildsFailedError(
            f"{len(self.failures)} builds failed:\n" + "\n".join(parts),
            dref=first.drv.dref,
            stage=str(dref_name(first.drv.dref)),
            failures=[
                {
                    "dref": f.drv.dref,
                    "stage": str(dref_name(f.drv.dref)),
                    "worker": f.worker,
                    "error": f"{type(f.error).__name__}: {f.error}",
                    "tail": list(f.tail),
                }
                for f in self.failures
            ],
        )
        exc.__cause__ = first.error
        return exc


def _with_notes(res: TaskResult) -> BaseException:
    e = res.error
    if e is None:
        raise ValueError("a successful task result has no error")
    if not getattr(e, "__notes__", None):
        for n in res.notes:
            e.add_note(n)
    return e


def run_parallel(
    c: Closure,
    S: StorageSettings,
    opts: RealizeOptions,
    jobs: int,
    executor: Any,
    t0: float,
    remote: Any = None,
    worker_root: str | None = None,
) -> Context:
    """Realize ``c`` with ``jobs`` threads or on ``executor`` (see the module docstring).

    With ``remote`` (a :class:`~pylightnix.remote.Remote` or URL), workers build
    in their own stores and exchange realizations through it (docs/cluster.md).
    """
    backend = open_backend(executor, jobs)
    R: Remote | None = None
    if remote is not None:
        if backend.in_process:
            backend.close()
            raise ClusterError(
                f"realize(remote={remote!r}) needs an executor whose workers run elsewhere "
                "(a distributed.Client or a ProcessPoolExecutor), not threads of this process"
            )
        from pylightnix.remote import open_remote

        R = open_remote(remote)
    coord = _Coordinator(c, S, opts, backend, t0, R, worker_root)
    try:
        with _running_events(backend, coord):
            return coord.run()
    finally:
        backend.close()


@contextlib.contextmanager
def _running_events(backend: Backend, coord: _Coordinator) -> Iterator[None]:
    """Forward Dask's "a task started on worker W" announcements as progress events."""
    hook = current_hook()
    on = getattr(backend, "running_events", None)
    if hook is None or on is None:
        yield
        return

    def on_event(msg: dict[str, Any]) -> None:
        drv = coord.by_dref.get(DRef(str(msg.get("dref"))))
        if drv is not None:
            extra: dict[str, Any] = {"worker": msg.get("label")}
            if msg.get("piece") is not None:
                extra["output"] = msg["piece"]
            hook(ProgressEvent("running", drv.dref, dref_name(drv.dref), extra=extra))

    with on(on_event):
        yield

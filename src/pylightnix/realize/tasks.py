"""Build tasks: the part of a realization that runs on an executor's worker.

The coordinator (``scheduler.py``) decides reuse, takes the build lock and
asks the matcher; only a build crosses to a worker, as a :class:`BuildTask`:
the derivation's config, promises and realizer (pickled on the coordinator
when the worker is another process), the store settings, the direct context
and the realize arguments. A task returns a :class:`TaskResult` and never
raises: an error travels back as a value with its notes, the worker's name and
the tail of the build log, because an exception's notes and cause do not
survive pickling.

A build is one task (:func:`run_build_task`: realizer, checks, insertion), or,
when its realizer splits into one realizer per output (``split_outputs()``,
as ``@autostage(nouts=N)`` does), N piece tasks (:func:`run_piece_task`:
realizer and checks, the finished output left in a private temporary folder)
and one insertion task (:func:`run_insert_task`) once every piece succeeded,
so that a build with a failed output stores none of its outputs.

Build logs: a worker process that runs one task at a time (a
``ProcessPoolExecutor`` process, a Dask worker with one thread) captures at
the file-descriptor level, subprocess output included; a worker running
several tasks at once (threads of the coordinator, a Dask worker with more
threads) captures Python-level writes per task (see ``buildlog.py``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pylightnix.config import Config
from pylightnix.errors import RealizeError
from pylightnix.realize.buildlog import TMP_LOG_NAME, add_log_note, capture_build_log, log_tail
from pylightnix.realize.registry import Derivation
from pylightnix.realize.step import RealizeOptions, build_in, check_promises, run_realizer
from pylightnix.refs import dref_name
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.init import fsinit
from pylightnix.store.insert import check_output, store_derivation, store_realization
from pylightnix.store.settings import StorageSettings, fsS, mkSS
from pylightnix.store.temproots import add_temproots
from pylightnix.types import Context, DRef, Path, Realizer, RRef

PROGRESS_TOPIC = "pylightnix-progress"
"""Dask event topic on which build tasks announce that they started."""


def _coordinator_only(S: StorageSettings, rrefs: list[RRef]) -> list[RRef] | None:
    """Stands in for the matcher on workers: matchers run on the coordinator only."""
    raise RealizeError("matchers run on the coordinator, never in a build task")


@dataclass(frozen=True)
class BuildTask:
    """Everything a worker needs to build one derivation (or one output of it).

    Attributes:
        dref, config, promises, deps: of the derivation.
        realizer: the realizer, or its pickle when the worker is another process.
        S: the store the worker builds into.
        ctx: the direct context of the build.
        realize_args: this derivation's realize arguments.
        keep_failed, show_log: the realize options.
        coordinator_pid: the coordinator's process id (a task in that process
            captures logs Python-level).
        piece: the output index of a split build, or ``None`` for a whole build.
        remote: (no shared filesystem) the :class:`~pylightnix.remote.Remote`
            the worker pulls the context from and pushes its outputs to.
        worker_root: (no shared filesystem) the worker's store root (default:
            the worker's ``$PYLIGHTNIX_ROOT``).
    """

    dref: DRef
    config: Config
    promises: tuple[tuple[str, ...], ...]
    deps: tuple[DRef, ...]
    realizer: Realizer | bytes
    S: StorageSettings
    ctx: Context
    realize_args: Mapping[str, Any] = field(default_factory=dict)
    keep_failed: bool = False
    show_log: bool = False
    coordinator_pid: int = 0
    piece: int | None = None
    remote: Any = None
    worker_root: str | None = None

    def derivation(self) -> Derivation:
        r = self.realizer
        realizer: Realizer = pickle.loads(r) if isinstance(r, bytes) else r  # noqa: S301
        return Derivation(
            self.dref, self.config, _coordinator_only, realizer, self.deps, self.promises
        )

    def options(self, log_fd: bool) -> RealizeOptions:
        return RealizeOptions(
            realize_args={self.dref: self.realize_args},
            keep_failed=self.keep_failed,
            show_log=self.show_log,
            log_fd=log_fd,
        )


@dataclass(frozen=True)
class Piece:
    """One finished output of a split build, waiting in its private folder."""

    tmp: str
    out: Path
    log: str
    start: float
    stop: float


@dataclass(frozen=True)
class TaskResult:
    """What a task sends back: RRefs (whole build, insertion) or a piece, or an error.

    Attributes:
        worker: who ran it (``host pid N``, plus the Dask worker address).
        pid: the worker's process id.
        rrefs: realizations inserted.
        piece: the finished output of a piece task.
        error: the error, if the task failed (notes moved to ``notes``).
        notes: the error's notes (the build log's tail among them).
        tail: the last lines of the build log of a failed build.
    """

    worker: str
    pid: int
    rrefs: tuple[RRef, ...] = ()
    piece: Piece | None = None
    error: BaseException | None = None
    notes: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()


def worker_label() -> str:
    """A readable name of the process running a task (host, pid, Dask address)."""
    base = f"{socket.gethostname()} pid {os.getpid()}"
    w = _dask_worker()
    return base if w is None else f"{w.address} ({base})"


def _dask_worker() -> Any:
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _fd_capture(task: BuildTask) -> bool:
    """Capture at fd level when this process runs this one task at a time."""
    if os.getpid() == task.coordinator_pid:
        return False
    w = _dask_worker()
    return w is None or int(w.state.nthreads) == 1


def _announce(task: BuildTask, worker: str) -> None:
    w = _dask_worker()
    if w is not None:
        # Dask sets "worker" in the message to the address: the full label goes in "label".
        w.log_event(PROGRESS_TOPIC, {"dref": task.dref, "piece": task.piece, "label": worker})


def _failed(e: BaseException, worker: str, tail: Sequence[str]) -> TaskResult:
    notes = list(getattr(e, "__notes__", ()))
    cause = e.__cause__
    if cause is not None:
        tb = "".join(traceback.format_exception(cause)).rstrip()
        notes.insert(0, f"caused by (on {worker}):\n{tb}")
    err: BaseException = e
    try:
        pickle.dumps(e)
    except Exception:
        err = RealizeError(f"{type(e).__name__}: {e}")
    return TaskResult(worker, os.getpid(), error=err, notes=tuple(notes), tail=tuple(tail))


def worker_store(task: BuildTask) -> StorageSettings:
    """(no shared filesystem) The worker's own store, created if missing."""
    return fsinit(mkSS(task.worker_root) if task.worker_root else fsS())


@contextlib.contextmanager
def _on_worker(task: BuildTask) -> Iterator[BuildTask]:
    """The task as this worker runs it: with a remote, on the worker's own store,
    the context pulled first (GC of that store held off meanwhile)."""
    if task.remote is None:
        yield task
        return
    from pylightnix.remote import pull

    Sw = worker_store(task)
    deps = [r for rs in task.ctx.values() for r in rs]
    if deps:
        # Temporary roots of this worker keep the context alive against a collection
        # of its store (registered first, so what is there already stays; what the
        # pull inserts is registered by the insertion itself).
        add_temproots(Sw, deps)
        pull(deps, task.remote, S=Sw)
    yield replace(task, S=Sw)


def _pushed(task: BuildTask, rrefs: Sequence[RRef]) -> None:
    if task.remote is not None:
        from pylightnix.remote import push

        push(rrefs, task.remote, S=task.S)


def run_build_task(task: BuildTask) -> TaskResult:
    """Build a whole derivation and insert its outputs (the coordinator holds the lock).

    With a remote, the build runs on the worker's own store and its outputs
    are pushed before the task returns.
    """
    worker = worker_label()
    _announce(task, worker)
    tmp = ""
    ok = False
    try:
        with _on_worker(task) as t:
            drv = t.derivation()
            tmp = mkdtemp_in(t.S.tmpdir, f"build-{dref_name(t.dref)}")
            rrefs = build_in(drv, t.S, t.ctx, t.options(_fd_capture(t)), tmp, time.time())
            ok = True
            _pushed(t, rrefs)
        return TaskResult(worker, os.getpid(), rrefs=tuple(rrefs))
    except BaseException as e:
        return _failed(e, worker, log_tail(os.path.join(tmp, TMP_LOG_NAME)) if tmp else [])
    finally:
        if tmp and (ok or not task.keep_failed):
            remove_tree(tmp)


def run_piece_task(task: BuildTask) -> TaskResult:
    """Build one output of a split build and check it; leave it in its private folder.

    With a remote (the pieces' folders are on different machines, out of reach
    of one insertion task), the output is inserted into the worker's own store
    and pushed right away, and the result carries its RRef.
    """
    worker = worker_label()
    _announce(task, worker)
    try:
        with _on_worker(task) as t:
            res = _build_piece(t, worker)
            if t.remote is not None and res.piece is not None:
                res = run_insert_task(t, [res.piece])
                if res.error is None:
                    _pushed(t, res.rrefs)
        return res
    except BaseException as e:
        return _failed(e, worker, [])


def _build_piece(task: BuildTask, worker: str) -> TaskResult:
    tmp = ""
    ok = False
    try:
        drv = task.derivation()
        store_derivation(task.S, task.dref, task.config)
        tmp = mkdtemp_in(task.S.tmpdir, f"build-{dref_name(task.dref)}-{task.piece}")
        log = os.path.join(tmp, TMP_LOG_NAME)
        opts = task.options(_fd_capture(task))
        t0 = time.time()
        with capture_build_log(log, tee=opts.show_log, fd_level=opts.log_fd):
            outs = run_realizer(drv, task.S, task.ctx, opts, tmp)
        if not (isinstance(outs, list) and len(outs) == 1 and isinstance(outs[0], str)):
            raise RealizeError(
                f"output {task.piece} of {task.dref} returned {outs!r}: a split realizer "
                "must return exactly one output folder",
                dref=task.dref,
            )
        check_promises(drv, outs)
        check_output(task.dref, outs[0])
        ok = True
        piece = Piece(tmp, Path(outs[0]), log, t0, time.time())
        return TaskResult(worker, os.getpid(), piece=piece)
    except BaseException as e:
        if tmp and isinstance(e, RealizeError):
            add_log_note(e, os.path.join(tmp, TMP_LOG_NAME))
        return _failed(e, worker, log_tail(os.path.join(tmp, TMP_LOG_NAME)) if tmp else [])
    finally:
        if tmp and not ok and not task.keep_failed:
            remove_tree(tmp)


def run_insert_task(task: BuildTask, pieces: Sequence[Piece]) -> TaskResult:
    """Insert the outputs of every piece of a split build, in output order."""
    worker = worker_label()
    try:
        rrefs = [
            store_realization(
                task.S,
                task.dref,
                task.config,
                task.ctx,
                p.out,
                build_start=p.start,
                build_stop=p.stop,
                log_path=p.log,
            )
            for p in pieces
        ]
        return TaskResult(worker, os.getpid(), rrefs=tuple(rrefs))
    except BaseException as e:
        return _failed(e, worker, [])
    finally:
        for p in pieces:
            remove_tree(p.tmp)


def probe_store(path: str, nonce: str) -> str | None:
    """On a worker: ``None`` if the file ``path`` holds ``nonce``, else what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            seen = f.read()
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    if seen != nonce:
        return f"reads another file at {path} (a different store)"
    return None


def probe_task(path: str, nonce: str) -> str | None:
    """:func:`probe_store` as a task: the problem, if any, names the worker."""
    p = probe_store(path, nonce)
    return None if p is None else f"{worker_label()}: {p}"

"""The scheduler: realize every derivation of a closure in dependency order.

``jobs=1`` walks the closure in its (topological) order; ``jobs>1`` or an
``executor`` (threads, processes, a Dask client) runs the builds of
derivations whose dependencies are done concurrently while this process
decides reuse (``parallel.py``).
No store-wide lock is held: what each step matches or builds becomes a
temporary root of this process (``step.match_in``), so a concurrent
collection keeps it. ``jobs=1`` registers the matches in one batch, before
each build and at the end (a no-op realize writes once).
"""

from __future__ import annotations

import time
from typing import Any

from pylightnix.errors import RealizeError
from pylightnix.gcpause import library_work
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, current_hook, report
from pylightnix.realize.matchers import score_file
from pylightnix.realize.parallel import run_parallel
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.realize.step import (
    MATCH_RETRIES,
    RealizeOptions,
    StepResult,
    VanishedError,
    build_folders,
    context_of,
    deferred_registration,
    immediate_registration,
    realize_one,
    vanished_error,
)
from pylightnix.refs import dref_name
from pylightnix.store.chosen import record_chosen
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context


def run_closure(
    c: Closure,
    S: StorageSettings,
    opts: RealizeOptions,
    jobs: int,
    executor: Any,
    remote: Any = None,
    worker_root: str | None = None,
) -> Context:
    """Realize every derivation of ``c``; return the chosen realizations of each."""
    hook = current_hook()
    t0 = time.monotonic()
    total = len(c.derivations)
    if hook is not None:
        report(ProgressEvent("plan", total=total))
    with build_folders():
        if executor is None and jobs <= 1 and remote is None:
            chosen = _run_sequential_registered(c, S, opts, hook is not None, t0)
        else:
            with immediate_registration():
                chosen = run_parallel(c, S, opts, jobs, executor, t0, remote, worker_root)
    if hook is not None:
        report(ProgressEvent("done", done=total, total=total, elapsed=time.monotonic() - t0))
    return chosen


def _record(
    res: StepResult, chosen: Context, progress: bool, done: int, total: int, t0: float
) -> None:
    if res.rrefs is not None:
        chosen[res.dref] = list(res.rrefs)
    if progress:
        kind = "built" if res.built else ("reuse" if res.rrefs is not None else "plan-build")
        report(
            ProgressEvent(
                kind,
                res.dref,
                dref_name(res.dref),
                done,
                total,
                time.monotonic() - t0,
                res.rrefs or (),
                {"reason": res.reason},
            )
        )


def _step(
    drv: Derivation,
    S: StorageSettings,
    ctx: Context,
    opts: RealizeOptions,
    progress: bool,
    done: int,
    total: int,
    t0: float,
) -> StepResult:
    if progress:
        report(
            ProgressEvent(
                "check", drv.dref, dref_name(drv.dref), done, total, time.monotonic() - t0
            )
        )
    try:
        chash = context_hash(ctx)
        res = realize_one(drv, S, ctx, opts, chash=chash)
        if res.rrefs is not None:
            record_chosen(S, drv.dref, chash, res.rrefs, score_file=score_file(drv.matcher))
        return res
    except RealizeError as e:
        if progress:
            report(
                ProgressEvent(
                    "fail",
                    drv.dref,
                    dref_name(drv.dref),
                    done,
                    total,
                    time.monotonic() - t0,
                    (),
                    {"error": str(e)},
                )
            )
        raise


def _run_sequential_registered(
    c: Closure, S: StorageSettings, opts: RealizeOptions, progress: bool, t0: float
) -> Context:
    """:func:`_run_sequential` with the matches registered in batches (one write for a
    no-op realize); if a collection deleted a choice before its batch, realize again."""
    for attempt in range(MATCH_RETRIES):
        try:
            # Again after a pick from an index was not in place: then each is checked at once.
            with deferred_registration(S, trust_index=attempt == 0), library_work():
                return _run_sequential(c, S, opts, progress, t0)
        except VanishedError:
            continue
    raise vanished_error(f"the closure of {', '.join(c.targets)}", S)


def _run_sequential(
    c: Closure, S: StorageSettings, opts: RealizeOptions, progress: bool, t0: float
) -> Context:
    chosen: Context = {}
    total = len(c.derivations)
    for i, drv in enumerate(c.derivations):
        ctx = context_of(drv, chosen)
        if ctx is None:
            _record(
                StepResult(drv.dref, None, False, "a dependency would be built"),
                chosen,
                progress,
                i + 1,
                total,
                t0,
            )
            continue
        res = _step(drv, S, ctx, opts, progress, i, total, t0)
        _record(res, chosen, progress, i + 1, total, t0)
    return chosen

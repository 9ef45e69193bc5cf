"""Realization: reuse matching realizations or run realizers, in dependency order.

The algorithm (DESIGN.md section 2), per derivation of the closure:

1. its context = the realizations chosen for each of its direct deps
   (a realization's hash covers its own context, so direct deps fix the
   whole transitive context);
2. candidates = stored realizations of the DRef with that context (through
   the store's context index);
3. unless forced, ask the matcher; a non-empty answer is reused as is;
4. otherwise take the derivation's build lock, ask again (another process
   may have built it meanwhile), run the realizer, check promises, insert
   each output atomically, and ask the matcher once more: it must now be
   satisfied;
5. record the chosen RRefs for downstream derivations.

The loop is a scheduler over the closure's DAG: ``jobs=1`` walks it in
order; ``jobs>1`` (or an ``executor``) runs independent derivations
concurrently. Steps 1-5 for one derivation are :func:`realize_one`, which
REPL and distributed layers reuse.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from pylightnix.errors import (
    BuildError,
    MatcherError,
    NotRealizedError,
    PromiseError,
    RealizeError,
)
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, current_hook, progress_hook, report
from pylightnix.realize.build import build_tmpdir_set
from pylightnix.realize.buildlog import (
    TMP_LOG_NAME,
    add_log_note,
    capture_build_log,
    show_log_default,
)
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.refs import dref_name
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.insert import check_output, store_derivation, store_realization
from pylightnix.store.layout import check_store
from pylightnix.store.locks import build_lock, gc_shared
from pylightnix.store.query import drefrrefs_chash
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Path, RRef

log = logging.getLogger("pylightnix.realize")


@dataclass(frozen=True)
class RealizeOptions:
    """Options of one realize call (see :func:`realize`)."""

    force_all: bool = False
    force: frozenset[DRef] = frozenset()
    assert_realized: frozenset[DRef] = frozenset()
    dry_run: bool = False
    realize_args: Mapping[DRef, Mapping[str, Any]] = field(default_factory=dict)
    keep_failed: bool = False
    show_log: bool = False
    # fd-level log capture (subprocesses too) is process-global: only when builds
    # run one at a time; concurrent builds capture Python-level writes per thread.
    log_fd: bool = True

    def forced(self, dref: DRef) -> bool:
        return self.force_all or dref in self.force


@dataclass(frozen=True)
class StepResult:
    """What :func:`realize_one` did for one derivation."""

    dref: DRef
    rrefs: tuple[RRef, ...] | None  # None: would build (dry run)
    built: bool
    reason: str


def _ask(drv: Derivation, S: StorageSettings, cands: list[RRef]) -> list[RRef] | None:
    try:
        m = drv.matcher(S, list(cands))
    except MatcherError as e:
        e.add_note(f"while matching {drv.dref}")
        if getattr(e, "dref", None) is None:
            e.dref = drv.dref  # type: ignore[attr-defined]
        raise
    if not m:
        return None
    if not isinstance(m, list):
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} returned {type(m).__name__}, "
            "expected a list of RRefs or None",
            dref=drv.dref,
        )
    cs = set(cands)
    foreign = [r for r in m if r not in cs]
    if foreign:
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} returned {foreign[0]}, which is not "
            "among its candidates: a matcher may only choose from the list it is given",
            dref=drv.dref,
        )
    return sorted(set(m))


def _check_promises(drv: Derivation, outs: Sequence[str]) -> None:
    missing = [
        os.path.join(o, *p)
        for o in outs
        for p in drv.promises
        if not os.path.lexists(os.path.join(o, *p))
    ]
    if missing:
        raise PromiseError(
            f"stage '{dref_name(drv.dref)}' ({drv.dref}) did not produce the files its "
            f"config promises: {', '.join(missing)} (write them in the realizer, or "
            "remove the [selfref, ...] entries from the config)",
            dref=drv.dref,
            missing=missing,
        )


def insert_outputs(
    drv: Derivation,
    S: StorageSettings,
    ctx: Context,
    outs: Sequence[str],
    build_start: float,
    log_path: str | None = None,
) -> list[RRef]:
    """Check the promises of finished output folders and insert them into the store.

    Every output is checked (promises, folder shape, file kinds) before any is
    inserted, so a build with one bad output stores none of its outputs.
    """
    if not isinstance(outs, list) or not outs or not all(isinstance(o, str) for o in outs):
        raise BuildError(
            f"realizer {drv.realizer!r} of {drv.dref} returned {outs!r}: it must return "
            "a non-empty list of output folder paths",
            dref=drv.dref,
            stage=str(dref_name(drv.dref)),
        )
    if len({os.path.realpath(o) for o in outs}) != len(outs):
        raise BuildError(
            f"realizer {drv.realizer!r} of {drv.dref} returned the same folder twice in "
            f"{outs!r}: each output must be its own folder",
            dref=drv.dref,
            stage=str(dref_name(drv.dref)),
        )
    _check_promises(drv, outs)
    for o in outs:
        check_output(drv.dref, o)
    t1 = time.time()
    return [
        store_realization(
            S,
            drv.dref,
            drv.config,
            ctx,
            o,
            build_start=build_start,
            build_stop=t1,
            log_path=log_path,
        )
        for o in outs
    ]


def run_realizer(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions, tmp: str
) -> list[Path]:
    """Run the derivation's realizer with ``tmp`` as its private temporary folder."""
    with build_tmpdir_set(tmp):
        try:
            return drv.realizer(S, drv.dref, ctx, opts.realize_args.get(drv.dref, {}))
        except Exception as e:
            raise BuildError(
                f"building stage '{dref_name(drv.dref)}' ({drv.dref}) failed: "
                f"{type(e).__name__}: {e}",
                dref=drv.dref,
                stage=str(dref_name(drv.dref)),
            ) from e


def build_in(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions, tmp: str, t0: float
) -> list[RRef]:
    """Build in the private folder ``tmp`` and insert the outputs (the caller owns ``tmp``).

    Failure capture (``realize/failures.py``) reuses it to keep ``tmp`` on failure.
    """
    # A garbage collection between instantiate and realize may have removed the
    # (then unused) derivation; the realizer reads its config from the store.
    store_derivation(S, drv.dref, drv.config)
    log_path = os.path.join(tmp, TMP_LOG_NAME)
    try:
        with capture_build_log(log_path, tee=opts.show_log, fd_level=opts.log_fd):
            outs = run_realizer(drv, S, ctx, opts, tmp)
        return insert_outputs(drv, S, ctx, outs, t0, log_path)
    except RealizeError as e:
        add_log_note(e, log_path)
        raise


def _build(drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions) -> list[RRef]:
    """Run the realizer and insert its outputs; the build lock is held by the caller."""
    tmp = mkdtemp_in(S.tmpdir, f"build-{dref_name(drv.dref)}")
    ok = False
    try:
        rrefs = build_in(drv, S, ctx, opts, tmp, time.time())
        ok = True
        return rrefs
    finally:
        if ok or not opts.keep_failed:
            remove_tree(tmp)
        else:
            log.warning("kept the failed build folder of %s at %s", drv.dref, tmp)


def realize_one(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions
) -> StepResult:
    """Steps 2-4 of the algorithm for one derivation in the given direct context."""
    chash = context_hash(ctx)
    forced = opts.forced(drv.dref)
    if not forced:
        m = _ask(drv, S, drefrrefs_chash(drv.dref, chash, S))
        if m is not None:
            return StepResult(drv.dref, tuple(m), False, "matched")
    if opts.dry_run:
        return StepResult(drv.dref, None, False, "forced" if forced else "unmatched")
    if drv.dref in opts.assert_realized:
        raise NotRealizedError(
            f"{drv.dref} ('{dref_name(drv.dref)}') is not realized in this context but "
            "was listed in assert_realized: realize it first, or drop it from the list",
            dref=drv.dref,
        )
    with build_lock(S, drv.dref):
        if not forced:
            # Another process may have built it while we waited for the lock.
            m = _ask(drv, S, drefrrefs_chash(drv.dref, chash, S))
            if m is not None:
                return StepResult(drv.dref, tuple(m), False, "built by another process")
        report(ProgressEvent("build", drv.dref, dref_name(drv.dref)))
        _build(drv, S, ctx, opts)
        m = _ask(drv, S, drefrrefs_chash(drv.dref, chash, S))
    if m is None:
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} is still unsatisfied after a build: "
            "it rejects what the realizer produced (check that it can accept a fresh "
            "realization, e.g. match_latest(n) needs n outputs: build_wrapper(f, nouts=n))",
            dref=drv.dref,
        )
    return StepResult(drv.dref, tuple(m), True, "forced" if forced else "built")


def _mkopts(
    force_rebuild: Iterable[DRef] | bool,
    assert_realized: Iterable[DRef],
    dry_run: bool,
    realize_args: Mapping[DRef, Mapping[str, Any]] | None,
    keep_failed: bool,
) -> RealizeOptions:
    if force_rebuild is True:
        return RealizeOptions(
            True,
            frozenset(),
            frozenset(assert_realized),
            dry_run,
            dict(realize_args or {}),
            keep_failed,
        )
    if force_rebuild is False:
        force_rebuild = []
    return RealizeOptions(
        False,
        frozenset(force_rebuild),
        frozenset(assert_realized),
        dry_run,
        dict(realize_args or {}),
        keep_failed,
    )


def _as_closure(closure: Closure | tuple[Any, Closure]) -> Closure:
    if isinstance(closure, tuple):
        closure = closure[1]
    if not isinstance(closure, Closure):
        raise RealizeError(
            f"realize expects a Closure or (result, Closure) from instantiate(), got "
            f"{type(closure).__name__}"
        )
    return closure


def _check_known(c: Closure, opts: RealizeOptions) -> None:
    """Refuse force_rebuild/assert_realized entries that name no derivation of the closure."""
    if not (opts.force or opts.assert_realized):
        return
    known = {d.dref for d in c.derivations}
    for option, drefs in (("force_rebuild", opts.force), ("assert_realized", opts.assert_realized)):
        unknown = sorted(str(d) for d in drefs if d not in known)
        if unknown:
            raise RealizeError(
                f"{option} names {unknown[0]!r}, which is not a derivation of this closure "
                f"({len(c.derivations)} derivations): pass DRefs returned by the stages "
                f"instantiated here, e.g. {option}=[dref]",
                dref=unknown[0],
            )


def realize(
    closure: Closure | tuple[Any, Closure],
    *,
    force_rebuild: Iterable[DRef] | bool = (),
    assert_realized: Iterable[DRef] = (),
    dry_run: bool = False,
    realize_args: Mapping[DRef, Mapping[str, Any]] | None = None,
    keep_failed: bool = False,
    jobs: int = 1,
    executor: Executor | None = None,
    progress: Any = None,
    show_log: bool | None = None,
    explain: bool = False,
) -> tuple[Any, Closure, Context]:
    """Realize a closure; return ``(result, closure, context)``.

    Args:
        closure: what :func:`instantiate` returned.
        force_rebuild: DRefs to build anew even if realizations match, or ``True`` for all.
        assert_realized: DRefs that must not need a build (else :class:`NotRealizedError`).
        dry_run: decide only; derivations that would be built (and their
            dependants) are left out of the returned context.
        realize_args: per-DRef extra arguments handed to realizers.
        keep_failed: keep the temporary folder of a failed build (its path is logged).
        jobs: how many derivations to realize at once (threads).
        executor: a ``concurrent.futures.Executor`` to run derivations on instead.
        progress: a callback receiving :class:`ProgressEvent` records.
        show_log: show what realizers print live, besides capturing it into
            each realization's ``build.log`` (default: ``$PYLIGHTNIX_SHOW_LOG``).
        explain: first log (logger ``pylightnix.realize``, level INFO) and report
            (``ProgressEvent("explain")``) why each stage will be reused or built;
            see :func:`pylightnix.realize.explain.explain`.

    Returns:
        the stage result, the closure, and the chosen realizations of every
        derivation of the closure.

    Raises:
        BuildError: a realizer raised (chained); the store keeps no trace of that build.
        PromiseError, MatcherError, NotRealizedError: see their docs.
    """
    c = _as_closure(closure)
    opts = _mkopts(force_rebuild, assert_realized, dry_run, realize_args, keep_failed)
    _check_known(c, opts)
    if type(jobs) is not int or jobs < 1:
        raise RealizeError(f"realize(jobs={jobs!r}): jobs must be a positive int (1: sequential)")
    opts = replace(
        opts,
        show_log=show_log_default() if show_log is None else show_log,
        log_fd=executor is None and jobs <= 1,
    )
    S = c.S
    check_store(S)
    if explain:
        from pylightnix.realize.explain import explain as _explain
        from pylightnix.realize.explain import report_explanations

        with progress_hook(progress) if progress is not None else contextlib.nullcontext():
            report_explanations(_explain(c, force_rebuild=force_rebuild))
    if progress is not None:
        with progress_hook(progress):
            ctx = _run(c, S, opts, jobs, executor)
    else:
        ctx = _run(c, S, opts, jobs, executor)
    return c.result, c, ctx


def _run(
    c: Closure, S: StorageSettings, opts: RealizeOptions, jobs: int, executor: Executor | None
) -> Context:
    hook = current_hook()
    t0 = time.monotonic()
    total = len(c.derivations)
    if hook is not None:
        report(ProgressEvent("plan", total=total))
    with gc_shared(S):
        if executor is None and jobs <= 1:
            chosen = _run_sequential(c, S, opts, hook is not None, t0)
        else:
            chosen = _run_parallel(c, S, opts, jobs, executor, hook is not None, t0)
    if hook is not None:
        report(ProgressEvent("done", done=total, total=total, elapsed=time.monotonic() - t0))
    return chosen


def _context_of(drv: Derivation, chosen: Context) -> Context | None:
    ctx: Context = {}
    for d in drv.deps:
        r = chosen.get(d)
        if r is None:
            return None  # a dependency is not realized (dry run)
        ctx[d] = r
    return ctx


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
        return realize_one(drv, S, ctx, opts)
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


def _run_sequential(
    c: Closure, S: StorageSettings, opts: RealizeOptions, progress: bool, t0: float
) -> Context:
    chosen: Context = {}
    total = len(c.derivations)
    for i, drv in enumerate(c.derivations):
        ctx = _context_of(drv, chosen)
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


def _run_parallel(
    c: Closure,
    S: StorageSettings,
    opts: RealizeOptions,
    jobs: int,
    executor: Executor | None,
    progress: bool,
    t0: float,
) -> Context:
    chosen: Context = {}
    total = len(c.derivations)
    users: dict[DRef, list[Derivation]] = {d.dref: [] for d in c.derivations}
    waiting: dict[DRef, int] = {}
    for d in c.derivations:
        waiting[d.dref] = len(d.deps)
        for dep in d.deps:
            users[dep].append(d)
    ready = [d for d in c.derivations if waiting[d.dref] == 0]
    own = executor is None
    ex: Executor = executor if executor is not None else ThreadPoolExecutor(max_workers=jobs)
    running: dict[Future[StepResult], Derivation] = {}
    done = 0
    error: BaseException | None = None
    try:
        while ready or running:
            while ready and error is None:
                drv = ready.pop(0)
                ctx = _context_of(drv, chosen)
                if ctx is None:
                    res = StepResult(drv.dref, None, False, "a dependency would be built")
                    done += 1
                    _record(res, chosen, progress, done, total, t0)
                    for u in users[drv.dref]:
                        waiting[u.dref] -= 1
                        if waiting[u.dref] == 0:
                            ready.append(u)
                    continue
                fut = ex.submit(
                    contextvars.copy_context().run,
                    _step,
                    drv,
                    S,
                    ctx,
                    opts,
                    progress,
                    done,
                    total,
                    t0,
                )
                running[fut] = drv
            if not running:
                break
            fin, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in fin:
                drv = running.pop(fut)
                try:
                    res = fut.result()
                except BaseException as e:
                    if error is None:
                        error = e
                    continue
                done += 1
                _record(res, chosen, progress, done, total, t0)
                for u in users[drv.dref]:
                    waiting[u.dref] -= 1
                    if waiting[u.dref] == 0:
                        ready.append(u)
            if error is not None:
                ready.clear()
    finally:
        if own:
            ex.shutdown(wait=True)
    if error is not None:
        raise error
    return chosen


def _single_target(c: Closure) -> DRef:
    if len(c.targets) != 1:
        raise RealizeError(
            f"realize1 needs a stage that returns one DRef, this one returned "
            f"{len(c.targets)}: use realize() or realizeMany()"
        )
    return c.targets[0]


def realizeMany(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> list[RRef]:
    """Realize a single-target closure and return all realizations its matcher chose."""
    c = _as_closure(closure)
    t = _single_target(c)
    _, _, ctx = realize(c, **kwargs)
    if t not in ctx:
        raise NotRealizedError(f"{t} would need a build (dry run)", dref=t)
    return list(ctx[t])


def realize1(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> RRef:
    """Realize a single-target closure and return its one chosen realization."""
    rrefs = realizeMany(closure, **kwargs)
    if len(rrefs) != 1:
        t = _single_target(_as_closure(closure))
        raise RealizeError(
            f"{t} matched {len(rrefs)} realizations; realize1 returns exactly one: "
            "use realizeMany()",
            dref=t,
        )
    return rrefs[0]


def evaluate(stage: Any, *args: Any, **kwargs: Any) -> RRef:
    """Instantiate and realize a single-target stage: ``realize1(instantiate(stage, ...))``."""
    from pylightnix.realize.registry import instantiate

    return realize1(instantiate(stage, *args, **kwargs))

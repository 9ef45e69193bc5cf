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
concurrently (``scheduler.py``). Steps 2-4 for one derivation are
:func:`~pylightnix.realize.step.realize_one` (``step.py``), which the REPL
and failure capture reuse. This module holds the public entry points.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from pylightnix.errors import NotRealizedError, RealizeError
from pylightnix.progress import progress_hook
from pylightnix.realize.buildlog import show_log_default
from pylightnix.realize.display import progress_for
from pylightnix.realize.registry import Closure
from pylightnix.realize.scheduler import run_closure
from pylightnix.realize.step import RealizeOptions
from pylightnix.store.layout import check_store
from pylightnix.types import Context, DRef, RRef

if TYPE_CHECKING:  # the remote layer (archives, fsspec) loads only when a realize uses it
    from pylightnix.remote.backend import Remote
    from pylightnix.remote.substitute import Substituters


def make_options(
    force_rebuild: Iterable[DRef] | bool,
    assert_realized: Iterable[DRef],
    dry_run: bool,
    realize_args: Mapping[DRef, Mapping[str, Any]] | None,
    keep_failed: bool,
) -> RealizeOptions:
    """The :class:`RealizeOptions` of a realize call's keyword arguments."""
    force_all = force_rebuild is True
    force = frozenset() if isinstance(force_rebuild, bool) else frozenset(force_rebuild)
    return RealizeOptions(
        force_all,
        force,
        frozenset(assert_realized),
        dry_run,
        dict(realize_args or {}),
        keep_failed,
    )


def as_closure(closure: Closure | tuple[Any, Closure]) -> Closure:
    """The Closure of what instantiate() returned (a Closure or ``(result, Closure)``)."""
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
    executor: Executor | Any | None = None,
    progress: Any = None,
    show_log: bool | None = None,
    explain: bool = False,
    remote: Any = None,
    worker_root: str | None = None,
    substituters: Iterable[Remote | str | os.PathLike[str]] | None = None,
    trusted_keys: Iterable[str] | None = None,
    push_to: Remote | str | os.PathLike[str] | None = None,
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
        jobs: how many builds to run at once (threads); the outputs of an
            ``@autostage(nouts=N)`` build are N builds.
        executor: run builds there instead: a ``concurrent.futures.Executor``
            (a ``ProcessPoolExecutor``: realizers must pickle) or a
            ``distributed.Client`` (see docs/cluster.md). Reuse is decided here.
        progress: ``True`` to show progress (a live display on a terminal, plain
            lines otherwise; see :mod:`pylightnix.realize.display`), a callback
            receiving :class:`ProgressEvent` records, or ``False``; default:
            ``$PYLIGHTNIX_PROGRESS``.
        show_log: show what realizers print live, besides capturing it into
            each realization's ``build.log`` (default: ``$PYLIGHTNIX_SHOW_LOG``).
        explain: first log (logger ``pylightnix.realize``, level INFO) and report
            (``ProgressEvent("explain")``) why each stage will be reused or built;
            see :func:`pylightnix.realize.explain.explain`.
        remote: no shared filesystem: a remote cache (URL or
            :class:`~pylightnix.remote.Remote`) through which the ``executor``'s
            workers, each on its own store, get their inputs and return their
            outputs (docs/cluster.md).
        worker_root: the workers' store root with ``remote`` (default: each
            worker's ``$PYLIGHTNIX_ROOT``).
        substituters: remote caches (URLs, folders or :class:`Remote`) asked for
            a derivation's realizations in its context before building it
            (default: ``$PYLIGHTNIX_SUBSTITUTERS``, whitespace-separated); an
            unreachable one is a warning. A dry run does not ask them.
        trusted_keys: public keys ``name:base64``; substituted claims must be
            signed by one (default: ``$PYLIGHTNIX_TRUSTED_KEYS``).
        push_to: a remote cache to push what this call builds to.

    Returns:
        the stage result, the closure, and the chosen realizations of every
        derivation of the closure. They stay alive (temporary GC roots of
        this process, ``docs/gc.md``) until the process exits or calls
        :func:`~pylightnix.store.temproots.release_temproots`.
        (As in the original 0.2.x, ``realize`` of
        ``instantiate(stage)`` for a 0.2.x stage ``stage(m)`` answers its one RRef.)

    Raises:
        BuildError: a realizer raised (chained); the store keeps no trace of that build.
        PromiseError, MatcherError, NotRealizedError: see their docs.
    """
    c = as_closure(closure)
    opts = make_options(force_rebuild, assert_realized, dry_run, realize_args, keep_failed)
    _check_known(c, opts)
    if type(jobs) is not int or jobs < 1:
        raise RealizeError(f"realize(jobs={jobs!r}): jobs must be a positive int (1: sequential)")
    opts = replace(
        opts,
        show_log=show_log_default() if show_log is None else show_log,
        log_fd=executor is None and jobs <= 1,
        substituters=_substituters(substituters, trusted_keys),
        push_to=None if push_to is None else writable_remote(push_to),
    )
    S = c.S
    check_store(S)
    with progress_for(progress, c) as hook:
        if explain:
            from pylightnix.realize.explain import explain as _explain
            from pylightnix.realize.explain import report_explanations

            with progress_hook(hook) if hook is not None else contextlib.nullcontext():
                report_explanations(_explain(c, force_rebuild=force_rebuild))
        if hook is not None:
            with progress_hook(hook):
                ctx = run_closure(c, S, opts, jobs, executor, remote, worker_root)
        else:
            ctx = run_closure(c, S, opts, jobs, executor, remote, worker_root)
    if getattr(closure, "seed_api", False):
        # realize(instantiate(stage)) of a 0.2.x stage(m): the original answered one RRef.
        return cast("tuple[Any, Closure, Context]", _one_rref(c, ctx))
    return c.result, c, ctx


def _substituters(
    substituters: Iterable[Remote | str | os.PathLike[str]] | None,
    trusted_keys: Iterable[str] | None,
) -> Substituters | None:
    """The substituters of a realize call; the remote layer is imported only when some are
    given (arguments or ``$PYLIGHTNIX_SUBSTITUTERS``)."""
    # remote.substitute.ENV_SUBSTITUTERS, read here without importing the remote layer.
    if substituters is None and not os.environ.get("PYLIGHTNIX_SUBSTITUTERS", "").split():
        return None
    from pylightnix.remote.substitute import make_substituters

    return make_substituters(substituters, trusted_keys)


def writable_remote(url: Remote | str | os.PathLike[str]) -> Remote:
    """The remote ``push_to`` names, refused now (before building) if it is read-only."""
    from pylightnix.remote.backend import open_remote

    r = open_remote(url)
    r.check_writable()
    return r


def _single_target(c: Closure) -> DRef:
    if len(c.targets) != 1:
        raise RealizeError(
            f"realize1 needs a stage that returns one DRef, this one returned "
            f"{len(c.targets)}: use realize() or realizeMany()"
        )
    return c.targets[0]


def _chosen(c: Closure, ctx: Context) -> list[RRef]:
    t = _single_target(c)
    if t not in ctx:
        raise NotRealizedError(f"{t} would need a build (dry run)", dref=t)
    return list(ctx[t])


def _one_rref(c: Closure, ctx: Context) -> RRef:
    rrefs = _chosen(c, ctx)
    if len(rrefs) != 1:
        t = _single_target(c)
        raise RealizeError(
            f"{t} matched {len(rrefs)} realizations; realize1 returns exactly one: "
            "use realizeMany()",
            dref=t,
        )
    return rrefs[0]


def realizeMany(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> list[RRef]:
    """Realize a single-target closure and return all realizations its matcher chose."""
    c = as_closure(closure)
    _single_target(c)
    _, _, ctx = realize(c, **kwargs)
    return _chosen(c, ctx)


def realize1(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> RRef:
    """Realize a single-target closure and return its one chosen realization."""
    c = as_closure(closure)
    _single_target(c)
    _, _, ctx = realize(c, **kwargs)
    return _one_rref(c, ctx)


def evaluate(stage: Any, *args: Any, **kwargs: Any) -> RRef:
    """Instantiate and realize a single-target stage: ``realize1(instantiate(stage, ...))``."""
    from pylightnix.realize.registry import instantiate

    return realize1(instantiate(stage, *args, **kwargs))

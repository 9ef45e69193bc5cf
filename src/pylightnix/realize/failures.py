"""Failure capture: record failed builds as realizations marked failed.

For long non-deterministic sweeps (100 seeds of a training stage) a failure
should be recorded and the sweep should go on. Two opt-ins:

* ``realizeE(closure, ...)`` realizes a closure without stopping at failed
  builds. A failed build becomes a *failed realization*; every stage that
  depends on a failed one is recorded as failed too, without running. It
  returns ``(result, closure, context, failures)``.
* ``mkdrvE(config, matcher, realizer)`` registers a derivation whose failed
  builds are recorded even under a plain :func:`realize` (which still raises
  the :class:`BuildError`, with a note naming the failed realization).

A failed realization is an ordinary read-only realization folder holding
whatever the build left in its private temporary folder (the partial
outputs, e.g. ``out0/``, temporary folder names without their random
suffix), its build log as ``__pylightnix__/build.log``
(like a successful build's, outside the hash) and
``__pylightnix__/failure.json``: the exception type, message and traceback
(and, for a stage that did not run, the failed dependency's RRef).
The unit of failure is one build: a realizer that raises is one failed
realization with all its partial outputs. An ``@autostage(nouts=N)`` build
under ``realizeE`` is finer: each output whose call raised becomes its own
failed realization (:func:`capture_output_failure`) and the good outputs are
stored; the derivation fails only if its matcher is then unsatisfied (e.g.
``match_latest(N)``; ``match_best(file)`` is satisfied by one).

A failed realization's hash covers the failure record under another domain
tag than a successful realization's hash, so a failed realization never
shares an RRef with a successful one::

    rhash = sha256("pylightnix-rref-failed-v1\\0" + chash + NUL + tree + NUL
                   + sha256(failure.json)[:32])[:32]

Its index line is an ``F`` line (``store/index.py``), which the normal
candidate query never takes: matchers never see failed realizations, and the
no-op path of a normal realize does not read a single extra file.

Retrying: by default a failed realization does not block a retry: the next
``realizeE`` (or ``realize``) builds the stage again. With
``retry_failed=False`` a stage whose context already has a failed realization
(and no successful one) reuses the failure until ``force_rebuild``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import traceback
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pylightnix.config import Config, canonical_json
from pylightnix.errors import BuildError, PromiseError
from pylightnix.hashing import context_hash, context_json, failed_realization_hash, hash_tree
from pylightnix.progress import ProgressEvent, progress_hook, report
from pylightnix.realize.build import _BUILD_TMP
from pylightnix.realize.buildlog import TMP_LOG_NAME, flush_build_output
from pylightnix.realize.display import progress_for
from pylightnix.realize.engine import as_closure, make_options
from pylightnix.realize.matchers import score_file
from pylightnix.realize.registry import Closure, Derivation, Registry, mkdrv
from pylightnix.realize.step import (
    RealizeOptions,
    build_in,
    context_of,
    match_in,
    unsatisfied_after_build,
)
from pylightnix.refs import dref_name, mkrref, mkrrefs, parse_dref, rref2dref
from pylightnix.store.chosen import record_chosen
from pylightnix.store.fsops import (
    make_readonly,
    mkdtemp_in,
    remove_tree,
    unshare_hardlinks,
    write_private,
)
from pylightnix.store.index import read_index
from pylightnix.store.insert import meta_json, place_realization
from pylightnix.store.layout import (
    CHASH_LEN,
    CONTEXT_FILE,
    FAILURE_FILE,
    LOG_FILE,
    META_FILE,
    RESERVED,
    check_store,
    dref2path,
    rref2path_,
)
from pylightnix.store.locks import build_lock
from pylightnix.store.query import read_nofollow
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import Context, DRef, Matcher, Path, Realizer, RRef

log = logging.getLogger("pylightnix.realize")
_IN_REALIZE_E: ContextVar[bool] = ContextVar("pylightnix_in_realizeE", default=False)
_OUT_FAILS: ContextVar[list[Failure] | None] = ContextVar("pylightnix_out_fails", default=None)


@dataclass(frozen=True)
class Failure:
    """Why a derivation failed (the contents of ``failure.json`` plus refs).

    Attributes:
        dref: the derivation.
        rref: its failed realization.
        error: the exception type name (``"DependencyFailed"`` for a stage that
            did not run because a dependency failed).
        message: the exception text.
        traceback: the formatted traceback ('' for a dependency failure).
        dependency: the failed realization of a dependency that stopped this one.
    """

    dref: DRef
    rref: RRef
    error: str
    message: str
    traceback: str
    dependency: RRef | None = None


def _record(error: str, message: str, tb: str, dependency: RRef | None) -> dict[str, Any]:
    return {"error": error, "message": message, "traceback": tb, "dependency": dependency}


def _record_of(e: BaseException) -> dict[str, Any]:
    cause = e.__cause__ if isinstance(e, BuildError) and e.__cause__ is not None else e
    tb = "".join(traceback.format_exception(cause))
    return _record(type(cause).__name__, str(cause), tb, None)


def store_failed_realization(
    S: StorageSettings,
    dref: DRef,
    context: Context,
    folder: str,
    record: Mapping[str, Any],
    *,
    build_start: float,
) -> RRef:
    """Move ``folder`` (partial outputs) into the store as a failed realization.

    The derivation must be stored already. ``folder`` no longer exists afterwards.

    Returns:
        the failed realization's RRef (an identical one already stored is kept).
    """
    reserved = os.path.join(folder, RESERVED)
    if os.path.lexists(reserved):
        # The build itself wrote the reserved name: keep its bytes under another name.
        os.rename(reserved, os.path.join(folder, RESERVED + ".partial"))
    unshare_hardlinks(folder)  # as store_realization: never seal a file shared with the outside
    _drop_temp_suffixes(folder)
    chash = context_hash(context)
    # The build log becomes the realization's build.log (reserved, not hashed), as for
    # a successful build: never an artifact that looks like a result.
    tree = hash_tree(folder, exclude=[TMP_LOG_NAME])
    fjson = canonical_json(dict(record))
    rhash = failed_realization_hash(chash, tree, fjson)
    dhash, name = parse_dref(dref)
    rref = mkrref(rhash, dhash, name)
    os.mkdir(reserved)
    log_src = os.path.join(folder, TMP_LOG_NAME)
    if os.path.lexists(log_src):
        os.rename(log_src, os.path.join(reserved, LOG_FILE))
    # No fsync per reserved file: make_readonly(durable=...) flushes the whole folder once.
    write_private(os.path.join(reserved, CONTEXT_FILE), context_json(context))
    write_private(os.path.join(reserved, FAILURE_FILE), fjson)
    meta = meta_json(build_start, time.time(), {"failed": True})
    write_private(os.path.join(reserved, META_FILE), meta)
    make_readonly(folder, durable=S.durable, skip_top=True)
    place_realization(S, dref, chash, rhash, folder, failed=True)
    return rref


_TEMP_NAME = re.compile(r"(.+)-\d+-[a-z0-9_]{8}\Z")
"""A folder made by ``mkdtemp_in`` (``out0-<pid>-<random>``): a temporary name."""


def _drop_temp_suffixes(folder: str) -> None:
    """Give the build's temporary folders their plain names (``out0``), so that a failed
    realization shows partial outputs, not temporary names, and a rerun failing the same
    way gives the same RRef."""
    for n in sorted(os.listdir(folder)):
        m = _TEMP_NAME.match(n)
        if m is not None and os.path.isdir(os.path.join(folder, n)):
            dst = os.path.join(folder, m.group(1))
            if not os.path.lexists(dst):
                os.rename(os.path.join(folder, n), dst)


def rref_failure(rref: RRef, S: StorageSettings | None = None) -> Failure | None:
    """The :class:`Failure` of a failed realization, or ``None`` for a successful one."""
    s = fsS(S)
    p = os.path.join(rref2path_(rref, s), RESERVED, FAILURE_FILE)
    try:
        d = json.loads(read_nofollow(p))
    except FileNotFoundError:
        return None
    dep = d.get("dependency")
    return Failure(
        rref2dref(rref),
        rref,
        str(d["error"]),
        str(d["message"]),
        str(d["traceback"]),
        RRef(dep) if dep else None,
    )


def is_failed(rref: RRef, S: StorageSettings | None = None) -> bool:
    """Tell whether a realization is a failed one."""
    return os.path.exists(os.path.join(rref2path_(rref, fsS(S)), RESERVED, FAILURE_FILE))


def failed_rhashes(dref: DRef, S: StorageSettings) -> set[str]:
    """Hash parts of every failed realization of ``dref`` that its index names
    (no ``stat`` per realization; some may have been removed since)."""
    out: set[str] = set()
    for hs in read_index(S, dref).failed.values():
        out.update(hs)
    return out


def drefrrefs_failed(dref: DRef, context: Context, S: StorageSettings | None = None) -> list[RRef]:
    """The failed realizations of ``dref`` in ``context``, sorted."""
    s = fsS(S)
    names = read_index(s, dref).failed.get(context_hash(context)[:CHASH_LEN], {})
    dhash, name = parse_dref(dref)
    base = dref2path(dref, s)
    return sorted(mkrrefs([n for n in names if os.path.isdir(os.path.join(base, n))], dhash, name))


@dataclass(frozen=True)
class CaptureFailures:
    """A realizer wrapper recording failed builds as failed realizations (picklable).

    Under :func:`realizeE` it only re-raises (``realizeE`` records the failure).
    """

    realizer: Realizer

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        t0 = time.time()
        try:
            return self.realizer(S, dref, context, realize_args)
        except Exception as e:
            tmp = _BUILD_TMP.get()
            if _IN_REALIZE_E.get() or tmp is None:
                raise
            # The engine removes its temp folder on failure: move the partial outputs out first.
            folder = mkdtemp_in(S.tmpdir, "failed")
            for n in os.listdir(tmp):
                if n == TMP_LOG_NAME:
                    # The engine still writes and reads this log: keep a copy of it so far.
                    shutil.copyfile(os.path.join(tmp, n), os.path.join(folder, n))
                else:
                    os.rename(os.path.join(tmp, n), os.path.join(folder, n))
            rref = store_failed_realization(S, dref, context, folder, _record_of(e), build_start=t0)
            e.add_note(f"pylightnix: the failed build is recorded as {rref}")
            raise

    def __repr__(self) -> str:
        return f"CaptureFailures({self.realizer!r})"


def output_failures_captured() -> bool:
    """Tell whether the running build may record failed outputs one by one (``realizeE``)."""
    return _OUT_FAILS.get() is not None


def capture_output_failure(
    S: StorageSettings,
    dref: DRef,
    context: Context,
    folder: str,
    exc: BaseException,
    *,
    build_start: float,
) -> RRef:
    """Record one failed output of a multi-output build as a failed realization.

    A realizer making several outputs (``@autostage(nouts=N)``) calls it, when
    :func:`output_failures_captured`, for each output whose code raised, and
    returns only the good outputs; ``folder`` is moved into the store.

    Raises:
        RuntimeError: no ``realizeE`` build is running (check
            :func:`output_failures_captured` first).
    """
    sink = _OUT_FAILS.get()
    if sink is None:
        raise RuntimeError("capture_output_failure outside a realizeE build") from exc
    rec = _record_of(exc)
    tmp = _BUILD_TMP.get()
    log_src = os.path.join(tmp, TMP_LOG_NAME) if tmp is not None else None
    if log_src is not None and os.path.exists(log_src):
        # The build's log so far (every output's, up to this failure) goes with the failure.
        flush_build_output()
        shutil.copyfile(log_src, os.path.join(folder, TMP_LOG_NAME))
    rref = store_failed_realization(S, dref, context, folder, rec, build_start=build_start)
    sink.append(Failure(dref, rref, rec["error"], rec["message"], rec["traceback"]))
    return rref


def mkdrvE(
    config: Config | dict[str, Any],
    matcher: Matcher,
    realizer: Realizer,
    r: Registry | None = None,
) -> DRef:
    """:func:`mkdrv` whose failed builds are recorded as failed realizations.

    Args:
        config, matcher, realizer, r: as for :func:`mkdrv`.

    Returns:
        the DRef.
    """
    return mkdrv(config, matcher, CaptureFailures(realizer), r)


def _realize_one_e(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions, retry_failed: bool
) -> tuple[list[RRef], Failure | None, bool]:
    chash = context_hash(ctx)
    forced = opts.forced(drv.dref)
    if not forced:
        m = match_in(drv, S, chash)
        if m is not None:
            return m, None, False
        if not retry_failed:
            old = drefrrefs_failed(drv.dref, ctx, S)
            if old:
                f = rref_failure(old[-1], S)
                if f is not None:
                    return [old[-1]], f, False
    with build_lock(S, drv.dref):
        if not forced:
            m = match_in(drv, S, chash)
            if m is not None:
                return m, None, False
        report(ProgressEvent("build", drv.dref, dref_name(drv.dref)))
        tmp = mkdtemp_in(S.tmpdir, f"build-{dref_name(drv.dref)}")
        t0 = time.time()
        sink: list[Failure] = []
        tok = _OUT_FAILS.set(sink)
        try:
            build_in(drv, S, ctx, opts, tmp, t0)
        except (BuildError, PromiseError) as e:
            rec = _record_of(e)
            rref = store_failed_realization(S, drv.dref, ctx, tmp, rec, build_start=t0)
            f = Failure(drv.dref, rref, rec["error"], rec["message"], rec["traceback"])
            return [rref], f, True
        finally:
            _OUT_FAILS.reset(tok)
            remove_tree(tmp)
        m = match_in(drv, S, chash)
    if sink:
        log.warning(
            "%d output(s) of %s failed and were recorded as failed realizations: %s",
            len(sink),
            drv.dref,
            ", ".join(x.rref for x in sink),
        )
    if m is None and sink:
        # The good outputs are stored, but too few for the matcher: the derivation failed.
        first = sink[0]
        msg = f"{len(sink)} output(s) of the build failed; the first: {first.message}"
        return [first.rref], Failure(drv.dref, first.rref, first.error, msg, first.traceback), True
    if m is None:
        raise unsatisfied_after_build(drv)
    return m, None, True


def _dependency_failure(drv: Derivation, S: StorageSettings, ctx: Context, bad: RRef) -> Failure:
    msg = (
        f"not built: its dependency {rref2dref(bad)} failed (see {bad}); fix that stage "
        "and realize again"
    )
    rec = _record("DependencyFailed", msg, "", bad)
    folder = mkdtemp_in(S.tmpdir, "failed")
    rref = store_failed_realization(S, drv.dref, ctx, folder, rec, build_start=time.time())
    return Failure(drv.dref, rref, "DependencyFailed", msg, "", bad)


def _run_e(
    c: Closure,
    S: StorageSettings,
    opts: RealizeOptions,
    retry_failed: bool,
    chosen: Context,
    failures: dict[DRef, Failure],
) -> None:
    failed: set[RRef] = set()
    t0 = time.monotonic()
    total = len(c.derivations)
    report(ProgressEvent("plan", total=total))
    for i, drv in enumerate(c.derivations):
        name = dref_name(drv.dref)
        report(ProgressEvent("check", drv.dref, name, i, total, time.monotonic() - t0))
        ctx = context_of(drv, chosen) or {}
        bad = next((r for rs in ctx.values() for r in rs if r in failed), None)
        f: Failure | None
        if bad is not None:
            f = _dependency_failure(drv, S, ctx, bad)
            rrefs, built = [f.rref], False
        else:
            rrefs, f, built = _realize_one_e(drv, S, ctx, opts, retry_failed)
        chosen[drv.dref] = list(rrefs)
        extra: dict[str, Any] = {}
        if f is not None:
            failures[drv.dref] = f
            failed.add(f.rref)
            kind = "fail"
            extra = {"error": f"{f.error}: {f.message}"}
        else:
            kind = "built" if built else "reuse"
            record_chosen(S, drv.dref, context_hash(ctx), rrefs, score_file=score_file(drv.matcher))
        elapsed = time.monotonic() - t0
        report(ProgressEvent(kind, drv.dref, name, i + 1, total, elapsed, tuple(rrefs), extra))
    report(ProgressEvent("done", done=total, total=total, elapsed=time.monotonic() - t0))


def realizeE(
    closure: Closure | tuple[Any, Closure],
    *,
    force_rebuild: Iterable[DRef] | bool = (),
    realize_args: Mapping[DRef, Mapping[str, Any]] | None = None,
    retry_failed: bool = True,
    progress: Any = None,
) -> tuple[Any, Closure, Context, dict[DRef, Failure]]:
    """Realize a closure, recording failed builds instead of stopping at them.

    Derivations are realized in order (one at a time). A realizer that raises
    (or misses a promised file) gives a failed realization; every derivation
    depending on a failed one gets a failed realization without running.

    Args:
        closure: what :func:`instantiate` returned.
        force_rebuild: DRefs to build anew, or ``True`` for all.
        realize_args: per-DRef extra arguments handed to realizers.
        retry_failed: build again a stage whose only realizations in its
            context are failed ones (default); ``False`` reuses the failure.
        progress: as for :func:`realize` (``True``: a display); a callback receives
            :class:`ProgressEvent` records, a failed derivation giving a ``"fail"``
            event whose ``rrefs`` is its failed realization.

    Returns:
        ``(result, closure, context, failures)``: ``context`` holds the chosen
        realizations, failed ones included; ``failures`` maps every failed
        derivation to its :class:`Failure`.

    Raises:
        MatcherError: a matcher misbehaves (not a build failure: not captured).
    """
    c = as_closure(closure)
    opts = make_options(force_rebuild, (), False, realize_args, False)
    S = c.S
    check_store(S)
    chosen: Context = {}
    failures: dict[DRef, Failure] = {}
    tok = _IN_REALIZE_E.set(True)
    try:
        with contextlib.ExitStack() as stack:
            hook = stack.enter_context(progress_for(progress, c))
            if hook is not None:
                stack.enter_context(progress_hook(hook))
            _run_e(c, S, opts, retry_failed, chosen, failures)
    finally:
        _IN_REALIZE_E.reset(tok)
    return c.result, c, chosen, failures

"""One derivation's realization step (steps 2-4 of the algorithm in ``engine.py``).

:func:`realize_one` decides for one derivation in a given direct context:
reuse what the matcher accepts, or take the build lock, ask again, run the
realizer in a private temporary folder, check the outputs and insert them.
The scheduler, the REPL and failure capture are built from these pieces.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import selfref
from pylightnix.errors import BuildError, MatcherError, NotRealizedError, PromiseError, RealizeError
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, report
from pylightnix.realize.build import build_tmpdir_set
from pylightnix.realize.buildlog import TMP_LOG_NAME, add_log_note, capture_build_log
from pylightnix.realize.registry import Derivation
from pylightnix.refs import dref_name
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.insert import check_output, store_derivation, store_realization
from pylightnix.store.locks import build_lock
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


def ask_matcher(drv: Derivation, S: StorageSettings, cands: list[RRef]) -> list[RRef] | None:
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


def check_promises(drv: Derivation, outs: Sequence[str]) -> None:
    failed = [
        (o, list(p)) for o in outs for p in drv.promises if not os.path.lexists(os.path.join(o, *p))
    ]
    missing = [os.path.join(o, *p) for o, p in failed]
    if missing:
        raise PromiseError(
            f"stage '{dref_name(drv.dref)}' ({drv.dref}) did not produce the files its "
            f"config promises: {', '.join(missing)} (write them in the realizer, or "
            "remove the [selfref, ...] entries from the config)",
            dref=drv.dref,
            missing=missing,
            # the original's PromiseException.failed: (output folder, [selfref, *path])
            failed=[(o, [selfref, *p]) for o, p in failed],
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
    check_promises(drv, outs)
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
        m = match_in(drv, S, chash)
        if m is not None:
            return StepResult(drv.dref, tuple(m), False, "matched")
    if drv.dref in opts.assert_realized:
        # Checked before the dry-run exit: a dry run answers "would this fail?" too.
        raise NotRealizedError(
            f"{drv.dref} ('{dref_name(drv.dref)}') is not realized in this context but "
            "was listed in assert_realized: realize it first, or drop it from the list",
            dref=drv.dref,
        )
    if opts.dry_run:
        return StepResult(drv.dref, None, False, "forced" if forced else "unmatched")
    with build_lock(S, drv.dref):
        if not forced:
            # Another process may have built it while we waited for the lock.
            m = match_in(drv, S, chash)
            if m is not None:
                return StepResult(drv.dref, tuple(m), False, "built by another process")
        report(ProgressEvent("build", drv.dref, dref_name(drv.dref)))
        _build(drv, S, ctx, opts)
        m = match_in(drv, S, chash)
    if m is None:
        raise unsatisfied_after_build(drv)
    return StepResult(drv.dref, tuple(m), True, "forced" if forced else "built")


def match_in(drv: Derivation, S: StorageSettings, chash: str) -> list[RRef] | None:
    """Ask the matcher of ``drv`` about its realizations in the context ``chash``."""
    return ask_matcher(drv, S, drefrrefs_chash(drv.dref, chash, S))


def unsatisfied_after_build(drv: Derivation) -> MatcherError:
    """The error for a matcher that still rejects what a build just produced."""
    return MatcherError(
        f"matcher {drv.matcher!r} of {drv.dref} is still unsatisfied after a build: "
        "it rejects what the realizer produced (check that it can accept a fresh "
        "realization, e.g. match_latest(n) needs n outputs: build_wrapper(f, nouts=n))",
        dref=drv.dref,
    )


def context_of(drv: Derivation, chosen: Context) -> Context | None:
    """The direct context of ``drv`` from the chosen realizations, or ``None`` if a dep has none."""
    ctx: Context = {}
    for d in drv.deps:
        r = chosen.get(d)
        if r is None:
            return None  # a dependency is not realized (dry run)
        ctx[d] = r
    return ctx

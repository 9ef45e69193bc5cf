"""REPL debugging: pause a realization at chosen derivations and build them by hand.

::

    s = repl_realize(instantiate(stage), force_interrupt=True)   # paused at the target
    b = repl_build()                 # a Build with fresh empty output folders
    ...                              # write the outputs interactively, try things
    repl_continueBuild(b)            # insert them; the realization goes on
    repl_rref()                      # the target's realization, once done

``force_interrupt=True`` pauses at the closure's targets; a list of DRefs
pauses at those. A paused derivation is built by the user instead of by its
realizer, even if a realization already matches (it is forced). Every other
derivation is realized as :func:`realize` would. Outputs given by hand go
through the same steps as a build's: the promise check, atomic insertion
under the derivation's build lock, and the matcher, which must then be
satisfied; ``repl_continue(out_rrefs=...)`` instead picks existing
realizations of the paused derivation in its context (after the same promise
check). ``repl_cancel()`` stops the session and removes its temporary folders.

Every function acts on the current session (the last one started) unless
given ``session=``. The store's GC lock is held (shared) while the session
advances, not while it waits for the user: a GC run meanwhile may collect
realizations of earlier stages of the session that nothing else keeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pylightnix.errors import MatcherError, ReplError
from pylightnix.hashing import context_hash
from pylightnix.realize.build import Build, build_tmpdir_set, mkbuild
from pylightnix.realize.engine import as_closure, make_options
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.realize.step import (
    RealizeOptions,
    check_promises,
    context_of,
    insert_outputs,
    match_in,
    realize_one,
)
from pylightnix.refs import dref_name, is_rref, rref2dref
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.layout import check_store, rref2path_
from pylightnix.store.locks import build_lock
from pylightnix.store.query import drefrrefs_chash
from pylightnix.types import Context, DRef, RRef


@dataclass
class ReplSession:
    """The state of one REPL realization (see the module docstring).

    Attributes:
        closure: the closure being realized.
        interrupt: the DRefs to pause at.
        opts: the realize options.
        context: the realizations chosen so far.
        index: the position in ``closure.derivations`` of the next derivation.
        paused: the derivation paused for the user, if any.
        paused_context: its context.
        done: the whole closure is realized.
        cancelled: :func:`repl_cancel` was called.
        tmpdirs: temporary folders of :func:`repl_build`, removed when done or cancelled.
    """

    closure: Closure
    interrupt: frozenset[DRef]
    opts: RealizeOptions
    context: Context = field(default_factory=dict)
    index: int = 0
    paused: Derivation | None = None
    paused_context: Context | None = None
    done: bool = False
    cancelled: bool = False
    tmpdirs: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        state = (
            "cancelled"
            if self.cancelled
            else "done"
            if self.done
            else f"paused at {self.paused.dref}"
            if self.paused
            else "running"
        )
        return f"<ReplSession {state}, {self.index}/{len(self.closure.derivations)}>"


_CURRENT: list[ReplSession | None] = [None]


def _session(session: ReplSession | None) -> ReplSession:
    s = session if session is not None else _CURRENT[0]
    if s is None:
        raise ReplError("no REPL session: start one with repl_realize(instantiate(stage))")
    if s.cancelled:
        raise ReplError("the REPL session was cancelled: start a new one with repl_realize()")
    return s


def _paused(session: ReplSession | None) -> tuple[ReplSession, Derivation, Context]:
    s = _session(session)
    if s.paused is None or s.paused_context is None:
        raise ReplError(
            "the REPL session is not paused at a derivation"
            + (" (it is done: use repl_rref())" if s.done else "")
        )
    return s, s.paused, s.paused_context


def _advance(s: ReplSession) -> ReplSession:
    S = s.closure.S
    drvs = s.closure.derivations
    # Each step registers what it matches and builds (store/temproots.py).
    while s.index < len(drvs):
        drv = drvs[s.index]
        ctx = context_of(drv, s.context)
        if ctx is None:  # pragma: no cover - no dry run in a REPL session
            raise ReplError(f"{drv.dref}: a dependency is not realized", dref=drv.dref)
        if drv.dref in s.interrupt:
            s.paused, s.paused_context = drv, ctx
            return s
        res = realize_one(drv, S, ctx, s.opts)
        s.context[drv.dref] = list(res.rrefs or ())
        s.index += 1
    s.done = True
    _remove_tmpdirs(s)
    return s


def _remove_tmpdirs(s: ReplSession) -> None:
    for t in s.tmpdirs:
        remove_tree(t)
    s.tmpdirs.clear()


def repl_realize(
    closure: Closure | tuple[Any, Closure],
    *,
    force_interrupt: bool | Iterable[DRef] = True,
    force_rebuild: Iterable[DRef] | bool = (),
    realize_args: Mapping[DRef, Mapping[str, Any]] | None = None,
) -> ReplSession:
    """Start realizing a closure, pausing at the chosen derivations.

    Args:
        closure: what :func:`instantiate` returned.
        force_interrupt: ``True`` pauses at the closure's targets, a list at those
            DRefs, ``False`` nowhere.
        force_rebuild, realize_args: as for :func:`realize`.

    Returns:
        the session (also the current session), paused or done.

    Raises:
        ReplError: a DRef to pause at is not in the closure.
    """
    c = as_closure(closure)
    check_store(c.S)
    if force_interrupt is True:
        stops = frozenset(c.targets)
    elif force_interrupt is False:
        stops = frozenset()
    else:
        stops = frozenset(force_interrupt)
    unknown = sorted(stops - set(c.index))
    if unknown:
        raise ReplError(
            f"force_interrupt names {unknown[0]}, which is not in this closure "
            "(pass DRefs of the instantiated stages)",
            dref=unknown[0],
        )
    s = ReplSession(c, stops, make_options(force_rebuild, (), False, realize_args, False))
    _CURRENT[0] = s
    return _advance(s)


def repl_build(session: ReplSession | None = None, *, nouts: int = 1) -> Build:
    """A :class:`Build` of the paused derivation with ``nouts`` fresh empty output folders.

    Raises:
        ReplError: no session, or it is not paused.
    """
    s, drv, ctx = _paused(session)
    tmp = mkdtemp_in(s.closure.S.tmpdir, f"repl-{dref_name(drv.dref)}")
    s.tmpdirs.append(tmp)
    args = s.opts.realize_args.get(drv.dref, {})
    with build_tmpdir_set(tmp):
        b: Build = mkbuild(s.closure.S, drv.dref, ctx, args, nouts=nouts)
    return b


def _finish(s: ReplSession, drv: Derivation, rrefs: Sequence[RRef]) -> ReplSession:
    s.context[drv.dref] = sorted(rrefs)
    s.paused, s.paused_context = None, None
    s.index += 1
    return _advance(s)


def repl_continue(
    out_paths: Sequence[str] | None = None,
    out_rrefs: Sequence[RRef] | None = None,
    *,
    session: ReplSession | None = None,
) -> ReplSession:
    """Give the paused derivation its outputs and go on.

    Args:
        out_paths: finished output folders (moved into the store).
        out_rrefs: existing realizations of the paused derivation in its context.
        session: the session (default: the current one).

    Returns:
        the session, paused at the next stop or done.

    Raises:
        ReplError: both or neither of ``out_paths``/``out_rrefs``, or a foreign RRef.
        PromiseError: an output lacks a promised file (nothing is inserted).
        MatcherError: the matcher rejects the realizations.
    """
    s, drv, ctx = _paused(session)
    S = s.closure.S
    if (out_paths is None) == (out_rrefs is None):
        raise ReplError(
            "repl_continue needs exactly one of out_paths=[folders] or out_rrefs=[rrefs]",
            dref=drv.dref,
        )
    chash = context_hash(ctx)
    if out_rrefs is not None:
        rrefs = list(out_rrefs)
        cands = set(drefrrefs_chash(drv.dref, chash, S))
        for r in rrefs:
            if not is_rref(r) or rref2dref(r) != drv.dref or r not in cands:
                raise ReplError(
                    f"{r!r} is not a realization of the paused {drv.dref} in its current "
                    f"context: give RRefs of that derivation built with these dependencies",
                    dref=drv.dref,
                )
        if not rrefs:
            raise ReplError("repl_continue(out_rrefs=[]) names no realization", dref=drv.dref)
        check_promises(drv, [rref2path_(r, S) for r in rrefs])
        return _finish(s, drv, rrefs)
    with build_lock(S, drv.dref):
        insert_outputs(drv, S, ctx, list(out_paths or []), time.time())
        m = match_in(drv, S, chash)
    if m is None:
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} is not satisfied by the outputs given "
            "to repl_continue (e.g. match_latest(n) needs n of them)",
            dref=drv.dref,
        )
    return _finish(s, drv, m)


def repl_continueBuild(b: Build, session: ReplSession | None = None) -> ReplSession:
    """Insert the outputs of a :func:`repl_build` build and go on."""
    s, drv, _ = _paused(session)
    if b.dref != drv.dref:
        raise ReplError(
            f"the build is of {b.dref}, but the session is paused at {drv.dref}",
            dref=drv.dref,
        )
    return repl_continue(out_paths=list(b.outpaths), session=s)


def repl_cancel(session: ReplSession | None = None) -> None:
    """Stop the session and remove its temporary folders (the store keeps what was built)."""
    s = session if session is not None else _CURRENT[0]
    if s is None:
        return
    _remove_tmpdirs(s)
    s.cancelled = True
    s.paused, s.paused_context = None, None
    if _CURRENT[0] is s:
        _CURRENT[0] = None


def repl_result(session: ReplSession | None = None) -> tuple[Any, Closure, Context] | None:
    """``(result, closure, context)`` of a finished session, as :func:`realize` returns;
    ``None`` while the session is still paused (as the original)."""
    s = _session(session)
    if not s.done:
        return None
    return s.closure.result, s.closure, dict(s.context)


def repl_rrefs(session: ReplSession | None = None) -> list[RRef]:
    """The realizations of the single target of a finished session.

    Raises:
        ReplError: the session is not done.
    """
    s = _session(session)
    res = repl_result(s)
    if res is None:
        raise ReplError(f"the REPL session is not done: {s!r}")
    _, c, ctx = res
    if len(c.targets) != 1:
        raise ReplError(f"the closure has {len(c.targets)} targets: use repl_result()")
    return list(ctx[c.targets[0]])


def repl_rref(session: ReplSession | None = None) -> RRef:
    """The one realization of the single target of a finished session."""
    rr = repl_rrefs(session)
    if len(rr) != 1:
        raise ReplError(f"the target has {len(rr)} realizations: use repl_rrefs()")
    return rr[0]

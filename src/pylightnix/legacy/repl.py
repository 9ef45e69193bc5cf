"""The original's REPL spellings (``repl_continue1``, ``repl_continueAll``...)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pylightnix.realize.step import realize_one
from pylightnix.repl import ReplSession, _session, repl_continue, repl_rref, repl_rrefs
from pylightnix.types import RRef


def _go(
    out_paths: Sequence[str] | None,
    out_rrefs: Sequence[RRef] | None,
    rh: ReplSession | None,
) -> ReplSession:
    s = _session(rh)
    if out_paths is None and out_rrefs is None:
        # The original's "default action": build the paused stage with its realizer.
        drv, ctx = s.paused, s.paused_context
        if drv is None or ctx is None:
            return repl_continue(out_paths, out_rrefs, session=s)
        opts = dataclasses.replace(s.opts, force=s.opts.force | {drv.dref})
        res = realize_one(drv, s.closure.S, ctx, opts)
        return repl_continue(None, list(res.rrefs or ()), session=s)
    return repl_continue(out_paths, out_rrefs, session=s)


def repl_continueMany(
    out_paths: Sequence[str] | None = None,
    out_rrefs: Sequence[RRef] | None = None,
    rh: ReplSession | None = None,
) -> list[RRef] | None:
    """Continue; the target's realizations when the session is done, else ``None``."""
    s = _go(out_paths, out_rrefs, rh)
    return repl_rrefs(s) if s.done else None


def repl_continue1(
    out_paths: Sequence[str] | None = None,
    out_rrefs: Sequence[RRef] | None = None,
    rh: ReplSession | None = None,
) -> RRef | None:
    """Continue; the target's one realization when the session is done, else ``None``."""
    s = _go(out_paths, out_rrefs, rh)
    return repl_rref(s) if s.done else None

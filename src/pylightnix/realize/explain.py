"""Explain a realize before running it: which stages would be reused or built, and why.

:func:`explain` walks a closure the way :func:`~pylightnix.realize.engine.realize`
does (same contexts, same matchers) but only reads the store: it never takes
a build lock and never runs a realizer. For each derivation it answers with
an :class:`Explanation` whose ``details["code"]`` is one of:

``matched``              existing realizations satisfy the matcher (reuse);
``forced``               ``force_rebuild`` names it (build);
``dependency-rebuilt``   a dependency will be built, so its context is new (build);
``no-realization``       this config was never realized (build);
``context-changed``      it was realized, but with other realizations of its
                         dependencies; ``details["changes"]`` names each
                         dependency with its old and new RRefs (build);
``matcher-unsatisfied``  realizations exist in this context but the matcher
                         asks for more or rejects them (build).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, report
from pylightnix.realize.engine import as_closure, make_options
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.realize.step import ask_matcher
from pylightnix.refs import dref_name
from pylightnix.store.layout import check_store
from pylightnix.store.query import drefrrefs, drefrrefs_chash, rrefbstart, rrefctx
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, RRef

log = logging.getLogger("pylightnix.realize")


@dataclass(frozen=True)
class Explanation:
    """Why one derivation of a closure would be reused or built.

    Attributes:
        dref: the derivation.
        name: its name.
        decision: ``"reuse"`` or ``"build"``.
        reason: one sentence for people.
        details: the same for programs: ``code`` (see the module doc) and
            the refs involved (``rrefs``, ``candidates``, ``dependencies``,
            ``changes``).
    """

    dref: DRef
    name: str
    decision: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def _names(drefs: Iterable[DRef]) -> str:
    return ", ".join(f"'{dref_name(d)}'" for d in drefs)


def _context_changes(ctx: Context, old: Context) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for d in sorted(set(ctx) | set(old), key=lambda x: (dref_name(x), x)):
        new_r, old_r = sorted(ctx.get(d, [])), sorted(old.get(d, []))
        if new_r != old_r:
            changes.append({"dref": d, "name": dref_name(d), "old": old_r, "new": new_r})
    return changes


def _context_reason(
    S: StorageSettings, drv: Derivation, ctx: Context, others: list[RRef]
) -> Explanation:
    # Compare with the most recent realization: the one a user most likely expected to reuse.
    latest = max(others, key=lambda r: (rrefbstart(r, S), r))
    changes = _context_changes(ctx, rrefctx(latest, S))
    if changes:
        c0 = changes[0]
        what = (
            f"dependency '{c0['name']}' now resolves to {', '.join(c0['new'])} "
            f"(was {', '.join(c0['old']) or 'absent'})"
        )
        if len(changes) > 1:
            what += f" (and {len(changes) - 1} more changed dependencies)"
    else:
        what = "its dependencies resolve differently"
    reason = f"{len(others)} realization(s) exist, but for another context: {what}"
    return Explanation(
        drv.dref,
        dref_name(drv.dref),
        "build",
        reason,
        {"code": "context-changed", "compared_with": latest, "changes": changes},
    )


def explain(
    closure: Closure | tuple[Any, Closure],
    *,
    force_rebuild: Iterable[DRef] | bool = (),
) -> list[Explanation]:
    """Say, for each derivation of a closure in order, whether realize would reuse or build it.

    Nothing is built and no lock is taken; matchers are asked exactly as
    :func:`~pylightnix.realize.engine.realize` asks them.

    Args:
        closure: what :func:`~pylightnix.realize.registry.instantiate` returned.
        force_rebuild: as for realize: DRefs to build anew, or ``True`` for all.

    Returns:
        one :class:`Explanation` per derivation, dependencies first.

    Raises:
        StoreError: the closure's store is missing.
        MatcherError: a matcher misbehaves (as realize would report it).
    """
    c = as_closure(closure)
    S = c.S
    check_store(S)
    opts = make_options(force_rebuild, (), False, None, False)
    chosen: Context = {}
    building: set[DRef] = set()
    out: list[Explanation] = []
    for drv in c.derivations:
        e = _explain_one(drv, S, chosen, building, opts.forced(drv.dref))
        if e.decision == "build":
            building.add(drv.dref)
        out.append(e)
    return out


def _explain_one(
    drv: Derivation,
    S: StorageSettings,
    chosen: Context,
    building: set[DRef],
    forced: bool,
) -> Explanation:
    name = dref_name(drv.dref)
    if forced:
        return Explanation(drv.dref, name, "build", "forced (force_rebuild)", {"code": "forced"})
    rebuilt = [d for d in drv.deps if d in building]
    if rebuilt:
        return Explanation(
            drv.dref,
            name,
            "build",
            f"dependency {_names(rebuilt)} will be built, so it is needed in a new context",
            {"code": "dependency-rebuilt", "dependencies": rebuilt},
        )
    ctx: Context = {d: chosen[d] for d in drv.deps}
    cands = drefrrefs_chash(drv.dref, context_hash(ctx), S)
    m = ask_matcher(drv, S, cands)
    if m is not None:
        chosen[drv.dref] = list(m)
        return Explanation(
            drv.dref,
            name,
            "reuse",
            f"matched {len(m)} existing realization(s): {', '.join(m)}",
            {"code": "matched", "rrefs": list(m)},
        )
    if cands:
        return Explanation(
            drv.dref,
            name,
            "build",
            f"matcher {drv.matcher!r} is not satisfied by the {len(cands)} realization(s) "
            "built in this context",
            {"code": "matcher-unsatisfied", "candidates": cands},
        )
    others = drefrrefs(drv.dref, S)
    if not others:
        return Explanation(
            drv.dref,
            name,
            "build",
            "no realization of this config exists",
            {"code": "no-realization"},
        )
    return _context_reason(S, drv, ctx, others)


def format_explanation(e: Explanation) -> str:
    """One line for people: ``build  name  reason``.

    >>> format_explanation(Explanation("dref:x", "train", "build", "forced (force_rebuild)"))
    'build  train: forced (force_rebuild)'
    """
    return f"{e.decision:<5}  {e.name}: {e.reason}"


def report_explanations(exps: Sequence[Explanation]) -> None:
    """Log each explanation (INFO) and send it to the progress hook as ``"explain"``."""
    for e in exps:
        log.info("%s", format_explanation(e))
        report(
            ProgressEvent(
                "explain",
                e.dref,
                e.name,
                extra={"decision": e.decision, "reason": e.reason, "details": e.details},
            )
        )

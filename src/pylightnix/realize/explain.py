"""Explain a realize before running it: which stages would be reused or built, and why.

:func:`explain` walks a closure the way :func:`~pylightnix.realize.engine.realize`
does (same contexts, same matchers) but only reads the store: it never takes
a build lock and never runs a realizer. For each derivation it answers with
an :class:`Explanation` whose ``details["code"]`` is one of:

``matched``              existing realizations satisfy the matcher (reuse);
``forced``               ``force_rebuild`` names it (build);
``dependency-rebuilt``   a dependency will be built, so its context is new (build);
``no-realization``       this config was never realized (build); when a
                         derivation of the same name is stored,
                         ``details["closest"]`` is the one whose config
                         differs least and ``details["changes"]`` lists
                         the differing keys with old and new values
                         (``lr: 0.1 -> 0.3``; a dependency as its own
                         change, ``data: dataset(n: 200 -> 300)``; a
                         function of an ``@autostage`` as ``function
                         helpers.clean changed``);
``context-changed``      it was realized, but with other realizations of its
                         dependencies; ``details["changes"]`` names each
                         dependency with its old and new RRefs (build);
``matcher-unsatisfied``  realizations exist in this context but the matcher
                         asks for more or rejects them (build).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import config_dict, is_refpath
from pylightnix.errors import RefError
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, report
from pylightnix.realize.engine import as_closure, make_options
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.realize.step import ask_matcher
from pylightnix.refs import dref_name, is_dref
from pylightnix.store.inspect import KeyPath, config_diff
from pylightnix.store.layout import FAILURE_FILE, RESERVED, check_store, rref2path_
from pylightnix.store.query import (
    alldrefs,
    drefcfg_,
    drefrrefs,
    drefrrefs_chash,
    rrefbstart,
    rrefctx,
)
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
    names = _Names()
    for drv in c.derivations:
        e = _explain_one(drv, S, chosen, building, opts.forced(drv.dref), names)
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
    names: _Names,
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
        return _new_config_reason(S, drv, names)
    return _context_reason(S, drv, ctx, others)


def _new_config_reason(S: StorageSettings, drv: Derivation, names: _Names) -> Explanation:
    name = dref_name(drv.dref)
    details: dict[str, Any] = {"code": "no-realization"}
    reason = "no realization of this config exists"
    near = closest_derivation(drv.dref, config_dict(drv.config), S, names.get(S, name))
    if near is not None:
        old, changes = near
        details.update(closest=old, changes=changes)
        shown = "; ".join(c["text"] for c in changes[:_SHOWN_CHANGES])
        more = len(changes) - _SHOWN_CHANGES
        if more > 0:
            shown += f" (and {more} more)"
        reason += f"; changed from the closest stored '{name}' ({old}): {shown}"
    return Explanation(drv.dref, name, "build", reason, details)


_SHOWN_CHANGES = 3


class _Names:
    """The stored derivations by name, listed once per explain (only when needed)."""

    def __init__(self) -> None:
        self._by: dict[str, list[DRef]] | None = None

    def get(self, S: StorageSettings, name: str) -> list[DRef]:
        if self._by is None:
            self._by = {}
            for d in alldrefs(S):
                self._by.setdefault(str(dref_name(d)), []).append(d)
        return self._by.get(name, [])


def closest_derivation(
    dref: DRef, config: Mapping[str, Any], S: StorageSettings, same_name: Iterable[DRef]
) -> tuple[DRef, list[dict[str, Any]]] | None:
    """The stored derivation among ``same_name`` whose config differs least from ``config``.

    Ties go to one with a successful realization, then one with a failed one, then
    the most recently built, then the DRef text.

    Returns:
        ``(dref, changes)`` (see :func:`config_changes`), or ``None`` when there is none.
    """
    best: tuple[tuple[int, int, float, str], DRef, list[dict[str, Any]]] | None = None
    for d in same_name:
        if d == dref:
            continue
        try:
            old = config_dict(drefcfg_(d, S))
        except (RefError, OSError, ValueError):
            continue  # removed meanwhile, or damaged: not a useful comparison
        changes = config_changes(old, config, S)
        rs = drefrrefs(d, S)
        ok = [r for r in rs if not _failed(r, S)]
        latest = max((rrefbstart(r, S) for r in rs), default=0.0)
        key = (len(changes), 0 if ok else 1 if rs else 2, -latest, str(d))
        if best is None or key < best[0]:
            best = (key, d, changes)
    return None if best is None else (best[1], best[2])


def _failed(rref: RRef, S: StorageSettings) -> bool:
    return os.path.exists(os.path.join(rref2path_(rref, S), RESERVED, FAILURE_FILE))


def config_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], S: StorageSettings | None = None
) -> list[dict[str, Any]]:
    """The keys in which two configs differ, each ``{"key", "old", "new", "text"}``.

    ``text`` is for people: ``lr: 0.1 -> 0.3``; a key only in one config shows
    ``(absent)``; with a store, a dependency that became another derivation of
    the same name shows that derivation's own change. The keys ``__code__.*``
    and ``__versions__.*`` of ``@autostage`` say which function or installed
    package changed; ``__source__`` is shown only when nothing else explains it.

    >>> [c["text"] for c in config_changes({"lr": 0.1, "n": 1}, {"lr": 0.3, "opt": "adam"})]
    ['lr: 0.1 -> 0.3', 'n: 1 -> (absent)', 'opt: (absent) -> "adam"']
    """
    d = config_diff(old, new)
    rows: list[tuple[KeyPath, Any, Any]] = [(k, v, _ABSENT) for k, v in d.removed.items()]
    rows += [(k, _ABSENT, v) for k, v in d.added.items()]
    rows += [(k, a, b) for k, (a, b) in d.changed.items()]
    rows.sort(key=lambda r: r[0])
    out: list[dict[str, Any]] = []
    for path, a, b in rows:
        key = ".".join(path)
        out.append(
            {
                "key": key,
                "old": None if a is _ABSENT else a,
                "new": None if b is _ABSENT else b,
                "text": _change_text(path, a, b, S),
            }
        )
    if len(out) > 1:
        # The source hash changes whenever a tracked function does: say only the function.
        out = [c for c in out if c["key"] != _SOURCE_KEY]
    return out


_ABSENT = object()
_SOURCE_KEY = "__source__"


def _show(v: Any) -> str:
    return "(absent)" if v is _ABSENT else json.dumps(v, sort_keys=True)


def _dep_of(v: Any) -> DRef | None:
    if is_dref(v):
        return DRef(v)
    if is_refpath(v):
        return DRef(v[0])
    return None


def _change_text(path: KeyPath, a: Any, b: Any, S: StorageSettings | None) -> str:
    key = ".".join(path)
    if path[0] == "__code__" and len(path) > 1:
        how = "is new" if a is _ABSENT else "is no longer used" if b is _ABSENT else "changed"
        return f"function {'.'.join(path[1:])} {how}"
    if path[0] == "__versions__" and len(path) > 1:
        return f"package {'.'.join(path[1:])}: {_show(a)} -> {_show(b)}"
    if key == _SOURCE_KEY:
        return "the stage function's source changed"
    da, db = _dep_of(a), _dep_of(b)
    if da is not None and db is not None and S is not None and dref_name(da) == dref_name(db):
        try:
            inner = config_changes(config_dict(drefcfg_(da, S)), config_dict(drefcfg_(db, S)), S)
        except (RefError, OSError, ValueError):
            inner = []
        if inner:
            return f"{key}: {dref_name(db)}({', '.join(c['text'] for c in inner)})"
    return f"{key}: {_show(a)} -> {_show(b)}"


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

"""``rmref``: remove one realization or derivation from the store, safely.

Removal refuses to break the store: a realization used in the context of
another stored realization, or kept by a result link (a GC root), and a
derivation another stored derivation depends on, stay unless ``force=True``
(then their users keep naming a missing object, as after ``rm -rf``).

An object disappears with one ``rename`` into the store's temporary space
(:func:`remove_via_trash`), so readers see it either whole or not at all; a
crash after the rename leaves only trash, which GC sweeps. Index markers of
a removed realization are removed after it (a stray marker is harmless:
queries check that the realization exists). The GC lock is held shared, so
a running collector and a removal never interleave.
"""

from __future__ import annotations

from pylightnix.config import config_deps
from pylightnix.errors import InUseError, RefError
from pylightnix.refs import is_dref, is_rref, parse_rref, rref2dref
from pylightnix.store import query
from pylightnix.store.fsops import remove_via_trash
from pylightnix.store.index import compact_index
from pylightnix.store.layout import check_store, dref2path
from pylightnix.store.query import (
    alldrefs,
    dref2path_checked,
    drefcfg_,
    drefrrefs,
    rref2path,
    rrefctx,
)
from pylightnix.store.roots import list_roots
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, RRef


def rref_users(rref: RRef, S: StorageSettings) -> list[RRef]:
    """Stored realizations whose direct context names ``rref``, sorted.

    Only realizations of derivations whose config depends on ``rref``'s
    derivation can name it, so only their contexts are read.
    """
    dref = rref2dref(rref)
    users: list[RRef] = []
    for d in alldrefs(S):
        if d == dref or dref not in config_deps(drefcfg_(d, S)):
            continue
        for r in drefrrefs(d, S):
            if rref in rrefctx(r, S).get(dref, []):
                users.append(r)
    return sorted(users)


def dref_users(dref: DRef, S: StorageSettings) -> list[DRef]:
    """Stored derivations whose config depends on ``dref``, sorted."""
    return sorted(d for d in alldrefs(S) if d != dref and dref in config_deps(drefcfg_(d, S)))


def _root_links(rrefs: set[RRef], S: StorageSettings) -> list[str]:
    return sorted(str(r.link) for r in list_roots(S) if r.rref in rrefs)


def _refuse(ref: str, users: list[str], what: str) -> InUseError:
    shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
    return InUseError(
        f"cannot delete {ref} : it is still {what} {shown} (pass force=True, or remove "
        f"{'that one' if len(users) == 1 else 'those'} first)",
        ref=ref,
        users=users,
    )


def _remove_rref(rref: RRef, S: StorageSettings) -> None:
    rhash, _, _ = parse_rref(rref)
    remove_via_trash(rref2path(rref, S), S.tmpdir)
    # Its index lines go (a line without its folder would be skipped anyway).
    compact_index(S, rref2dref(rref), lambda h: h != rhash, locked=lambda: None)
    # Per-process caches of immutable data must not outlive the object.
    query.forget_cached_ref(S, rref)


def rmref(ref: DRef | RRef, S: StorageSettings | None = None, *, force: bool = False) -> list[str]:
    """Remove a realization, or a derivation with all its realizations.

    A removal the user asks for by name: it takes no store-wide lock and does
    not look at other processes' temporary roots (``gc`` does), so removing
    what a running realize uses breaks that realize.

    Args:
        ref: an RRef or a DRef.
        S: the store.
        force: remove even when other stored objects or result links use it.

    Returns:
        The refs removed (the RRefs of a DRef first, then the DRef).

    Raises:
        RefError: ``ref`` is malformed or not stored.
        InUseError: ``ref`` is used and ``force`` is false; nothing is removed.
    """
    s = fsS(S)
    check_store(s)
    if is_rref(ref):
        rref = RRef(ref)
        rref2path(rref, s)
        if not force:
            users = rref_users(rref, s)
            if users:
                raise _refuse(rref, [str(u) for u in users], "used by")
            links = _root_links({rref}, s)
            if links:
                raise _refuse(rref, links, "kept by the result link")
        _remove_rref(rref, s)
        return [str(rref)]
    if is_dref(ref):
        dref = DRef(ref)
        dref2path_checked(dref, s)
        rrefs = drefrrefs(dref, s)
        if not force:
            dusers = dref_users(dref, s)
            if dusers:
                raise _refuse(dref, [str(u) for u in dusers], "a dependency of")
            links = _root_links(set(rrefs), s)
            if links:
                raise _refuse(dref, links, "kept by the result link")
        for r in rrefs:
            query.forget_cached_ref(s, r)
        remove_via_trash(dref2path(dref, s), s.tmpdir)
        query.forget_cached_ref(s, dref)
        return [*map(str, rrefs), str(dref)]
    raise RefError(f"rmref: {ref!r} is neither a DRef nor an RRef", ref=ref)

"""The store's dependency graph as the collector reads it, and reachability over it.

:func:`scan_graph` reads a whole store in one pass (no lock held, linear in
its size); :func:`reachable` and :func:`compute_live` are pure functions of
a graph given as mappings.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pylightnix.config import _scan
from pylightnix.errors import StoreError
from pylightnix.refs import (
    is_hashpart,
    is_rref,
    maybe_parse_dref_dirname,
    mkrref,
    parse_dref,
    rref2dref,
)
from pylightnix.store.layout import CONFIG_FILE, CONTEXT_FILE, INDEX_FILE, RESERVED
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

T = TypeVar("T")
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def reachable(roots: Iterable[T], edges: Mapping[T, Iterable[T]]) -> set[T]:
    """Every node of ``edges`` reachable from ``roots`` (roots included); one visit per node.

    Roots and targets missing from ``edges`` are not part of the graph and are left out.

    >>> sorted(reachable(["c", "x"], {"c": ["b"], "b": ["a"], "a": [], "d": ["a"]}))
    ['a', 'b', 'c']
    """
    seen: set[T] = set()
    stack = [r for r in roots if r in edges]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(x for x in edges[n] if x in edges and x not in seen)
    return seen


def compute_live(
    root_rrefs: Iterable[RRef],
    root_drefs: Iterable[DRef],
    rref_deps: Mapping[RRef, Iterable[RRef]],
    dref_deps: Mapping[DRef, Iterable[DRef]],
) -> tuple[set[RRef], set[DRef]]:
    """Live realizations and derivations of a store graph (linear in its size).

    Args:
        root_rrefs: realizations kept by roots.
        root_drefs: derivations kept by roots.
        rref_deps: every stored realization -> the realizations of its direct context.
        dref_deps: every stored derivation -> the derivations its config mentions.

    Returns:
        ``(live_rrefs, live_drefs)``: the realizations reachable from the root
        realizations, and the derivations reachable from the root derivations
        and from the derivations of live realizations.
    """
    live_r = reachable(root_rrefs, rref_deps)
    live_d = reachable([*root_drefs, *(rref2dref(r) for r in live_r)], dref_deps)
    return live_r, live_d


@dataclass
class StoreGraph:
    """What :func:`scan_graph` read: edges, times, and what the collector must fix or sweep."""

    rref_deps: dict[RRef, list[RRef]] = field(default_factory=dict)
    dref_deps: dict[DRef, list[DRef]] = field(default_factory=dict)
    drv_rrefs: dict[DRef, list[RRef]] = field(default_factory=dict)
    ctime: dict[str, float] = field(default_factory=dict)  # ref -> when it was stored
    unsealed: list[str] = field(default_factory=list)  # realization tops left writable
    unreadable: list[str] = field(default_factory=list)  # refs whose deps are unknown
    # Filled by scan_graph(leftovers=True): leftovers of crashed writes in derivation
    # folders, and the derivations that have an index file.
    drv_tmp: list[str] = field(default_factory=list)
    indexed: list[DRef] = field(default_factory=list)


def _read_json(path: str) -> object:
    """A small stored JSON file, read with three system calls (GC reads one per object)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks))


def _read_object(path: str) -> dict[str, object] | None:
    """A stored JSON object, or ``None`` if it is missing, unreadable or not an object."""
    try:
        raw = _read_json(path)
    except (OSError, ValueError):
        return None
    return raw if type(raw) is dict else None


def _read_context(path: str) -> list[RRef] | None:
    """The RRefs of a stored context file, or ``None`` if it is unreadable."""
    raw = _read_object(path)
    if raw is None:
        return None
    out: list[RRef] = []
    for v in raw.values():
        if type(v) is not list or not all(is_rref(x) for x in v):
            return None
        out.extend(v)
    return out


def _read_config_deps(path: str) -> list[DRef] | None:
    """The DRefs a stored config mentions, or ``None`` if it is missing or unreadable."""
    raw = _read_object(path)
    if raw is None:
        return None
    deps: set[str] = set()
    # The walk of config_deps, without validating the whole config again.
    _scan(raw, deps)
    return [DRef(d) for d in deps]


def listdir_store(path: str, what: str) -> list[str]:
    """``os.listdir`` of a store folder; a missing one is empty, a file there is an error."""
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise StoreError(
            f"{path!r} is a file, but the store keeps {what} there (garbage in the store): "
            "move that file away, then collect again",
            path=path,
        ) from None


def scan_graph(S: StorageSettings, *, leftovers: bool = False) -> StoreGraph:
    """Read the whole dependency graph of a store: one pass over its folders.

    Per derivation: one folder listing and one read of its config; per
    realization: one read of its context and one ``lstat``. ``leftovers``
    also notes the temporary files of crashed writes in derivation folders.
    """
    g = StoreGraph()
    for n in listdir_store(S.storage, "its derivations"):
        dref = maybe_parse_dref_dirname(n)
        if dref is None:
            continue
        ddir = os.path.join(S.storage, n)
        try:
            with os.scandir(ddir) as it:
                # d_type tells folders apart without a stat per entry.
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            dst = os.lstat(ddir)
        except (NotADirectoryError, FileNotFoundError):
            continue
        dhash, name = parse_dref(dref)
        cdeps = _read_config_deps(os.path.join(ddir, CONFIG_FILE))
        if cdeps is None:
            g.unreadable.append(dref)
        g.dref_deps[dref] = cdeps or []
        g.ctime[dref] = dst.st_ctime
        rs: list[RRef] = []
        for h, isdir in entries:
            if isdir and is_hashpart(h):
                r = mkrref(h, dhash, name)  # type: ignore[arg-type]
                rs.append(r)
                rdir = os.path.join(ddir, h)
                rdeps = _read_context(os.path.join(rdir, RESERVED, CONTEXT_FILE))
                if rdeps is None:
                    g.unreadable.append(r)
                g.rref_deps[r] = rdeps or []
                try:
                    rst = os.lstat(rdir)
                except FileNotFoundError:
                    continue
                g.ctime[r] = rst.st_ctime
                if rst.st_mode & _WRITE_BITS:
                    g.unsealed.append(rdir)
            elif leftovers and h.startswith(".tmp-"):
                g.drv_tmp.append(os.path.join(ddir, h))
            elif leftovers and h == INDEX_FILE:
                g.indexed.append(dref)
        g.drv_rrefs[dref] = sorted(rs)
    return g

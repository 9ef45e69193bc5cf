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
    HASH_LEN,
    folder_rref,
    is_dref,
    is_hashpart,
    is_rref,
    maybe_parse_dref_dirname,
    rref2dref,
)
from pylightnix.store.layout import CONFIG_FILE, CONTEXT_FILE, RESERVED
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

T = TypeVar("T")
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_CONTEXT_SUFFIX = f"/{RESERVED}/{CONTEXT_FILE}"


def reachable(roots: Iterable[T], edges: Mapping[T, Iterable[T]]) -> set[T]:
    """Every node of ``edges`` reachable from ``roots`` (roots included); one visit per node.

    Roots and targets missing from ``edges`` are not part of the graph and are left out.

    >>> sorted(reachable(["c", "x"], {"c": ["b"], "b": ["a"], "a": [], "d": ["a"]}))
    ['a', 'b', 'c']
    """
    seen: set[T] = set()
    stack = [r for r in roots if r in edges]
    push = stack.append
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        for x in edges[n]:
            if x not in seen and x in edges:
                push(x)
    return seen


def compute_live(
    root_rrefs: Iterable[RRef],
    root_drefs: Iterable[DRef],
    rref_deps: Mapping[RRef, Iterable[RRef]],
    dref_deps: Mapping[DRef, Iterable[DRef]],
    rref_drv: Mapping[RRef, DRef] | None = None,
) -> tuple[set[RRef], set[DRef]]:
    """Live realizations and derivations of a store graph (linear in its size).

    Args:
        root_rrefs: realizations kept by roots.
        root_drefs: derivations kept by roots.
        rref_deps: every stored realization -> the realizations of its direct context.
        dref_deps: every stored derivation -> the derivations its config mentions.
        rref_drv: the derivation of every realization of ``rref_deps``, if known
            (else each RRef is parsed).

    Returns:
        ``(live_rrefs, live_drefs)``: the realizations reachable from the root
        realizations, and the derivations reachable from the root derivations
        and from the derivations of live realizations.
    """
    live_r = reachable(root_rrefs, rref_deps)
    of_r = map(rref2dref, live_r) if rref_drv is None else map(rref_drv.__getitem__, live_r)
    live_d = reachable([*root_drefs, *of_r], dref_deps)
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
    # Filled by scan_graph(leftovers=True): leftovers of crashed writes in derivation folders.
    drv_tmp: list[str] = field(default_factory=list)
    # Every realization's derivation (the scan knows it; parsing an RRef costs more).
    rref_drv: dict[RRef, DRef] = field(default_factory=dict)


_DECODE = json.JSONDecoder().decode


def read_json(path: str) -> object:
    """A small stored JSON file, read with three system calls (GC reads one per object)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    try:
        # The store writes UTF-8: decoding it directly skips json.loads' encoding sniffing.
        return _DECODE(raw.decode())
    except ValueError:
        return json.loads(raw)  # another encoding, or a BOM (json.loads reads those too)


def _read_object(path: str) -> dict[str, object] | None:
    """A stored JSON object, or ``None`` if it is missing, unreadable or not an object."""
    try:
        raw = read_json(path)
    except (OSError, ValueError):
        return None
    return raw if type(raw) is dict else None


def _read_context(path: str) -> tuple[list[DRef], list[RRef]] | None:
    """The DRefs and RRefs of a stored context file, or ``None`` if it is unreadable."""
    raw = _read_object(path)
    if raw is None:
        return None
    out: list[RRef] = []
    for v in raw.values():
        if type(v) is not list or not all(map(is_rref, v)):
            return None
        out.extend(v)
    keys = list(raw)
    if not all(map(is_dref, keys)):
        return None
    return keys, out  # type: ignore[return-value]


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


def scan_graph(
    S: StorageSettings, *, leftovers: bool = False, times: bool = False, modes: bool = False
) -> StoreGraph:
    """Read the whole dependency graph of a store: one pass over its folders.

    Per derivation: one folder listing (its ``d_type`` tells realizations
    apart, no ``stat`` each) and one read of its config; per realization: one
    read of its context. ``leftovers`` also notes the temporary files of crashed writes in
    derivation folders; ``times``
    reads when each object was stored (``ctime``, one ``lstat`` each, for the
    policies); ``modes`` finds realization tops left writable (``unsealed``,
    one ``lstat`` per realization, for a real collection).
    """
    g = StoreGraph()
    prefix = os.path.join(S.storage, "")  # paths as os.path.join(storage, name) makes them
    for n in sorted(listdir_store(S.storage, "its derivations")):
        dref = maybe_parse_dref_dirname(n)
        if dref is not None:
            _scan_derivation(g, dref, n, prefix + n, leftovers, times, modes)
    return g


def _scan_derivation(
    g: StoreGraph, dref: DRef, n: str, ddir: str, leftovers: bool, times: bool, modes: bool
) -> None:
    """:func:`scan_graph` of one derivation folder ``ddir`` (named ``n``) into ``g``."""
    try:
        with os.scandir(ddir) as it:
            # d_type tells folders apart without a stat per entry.
            entries = [(e.name, e) for e in it]
        if times:
            g.ctime[dref] = os.lstat(ddir).st_ctime
    except (NotADirectoryError, FileNotFoundError):
        return
    rs: list[RRef] = []
    cdeps: list[DRef] | None = None
    for h, e in entries:
        if len(h) == HASH_LEN and is_hashpart(h):
            if not e.is_dir(follow_symlinks=False):
                continue
            r = folder_rref(h, n)
            rs.append(r)
            g.rref_drv[r] = dref
            rdir = ddir + "/" + h
            ctx = _read_context(rdir + _CONTEXT_SUFFIX)
            if ctx is None:
                g.unreadable.append(r)
            elif cdeps is None:
                # A realization's direct context names every dependency of its
                # derivation (realize makes it from the config's DRefs): the
                # config need not be read as well.
                cdeps = ctx[0]
            g.rref_deps[r] = ctx[1] if ctx is not None else []
            if not (times or modes):
                continue
            try:
                rst = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if times:
                g.ctime[r] = rst.st_ctime
            if modes and rst.st_mode & _WRITE_BITS:
                g.unsealed.append(rdir)
        elif leftovers and h.startswith(".tmp-"):
            g.drv_tmp.append(ddir + "/" + h)
    if cdeps is None:
        # No readable realization: the config says what the derivation depends on.
        cdeps = _read_config_deps(ddir + "/" + CONFIG_FILE)
        if cdeps is None:
            g.unreadable.append(dref)
    g.dref_deps[dref] = cdeps or []
    rs.sort()
    g.drv_rrefs[dref] = rs

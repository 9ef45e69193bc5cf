"""The original's garbage-collection helpers (``pylightnix.garb``) over :func:`pylightnix.gc`."""

from __future__ import annotations

import os
from collections.abc import Iterable

from pylightnix.store.gc import gc
from pylightnix.store.query import path2dref, path2rref
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, RRef


def diskspace_h(sz: int) -> str:
    """A size in bytes for people: ``'1.5 MiB'``.

    >>> diskspace_h(1536 * 1024)
    '1.5 MiB'
    """
    x = float(sz)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{int(x)} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} TiB"  # pragma: no cover - the loop always returns


def gc_exceptions(
    keep_paths: Iterable[str], S: StorageSettings | None = None
) -> tuple[list[DRef], list[RRef]]:
    """The DRefs and RRefs that symlinks under ``keep_paths`` (or the paths themselves) point to."""
    s = fsS(S)
    drefs: list[DRef] = []
    rrefs: list[RRef] = []

    def add(p: str) -> None:
        if not os.path.islink(p):
            return
        target = os.path.realpath(p)
        r = path2rref(target, s)
        if r is not None:
            rrefs.append(r)
            return
        d = path2dref(target, s)
        if d is not None:
            drefs.append(d)

    for top in keep_paths:
        add(top)
        if os.path.isdir(top) and not os.path.islink(top):
            for root, dirs, files in os.walk(top):
                for n in dirs + files:
                    add(os.path.join(root, n))
    return sorted(set(drefs)), sorted(set(rrefs))


def gc_candidates(
    keep_paths: Iterable[str], S: StorageSettings | None = None
) -> tuple[list[DRef], list[RRef]]:
    """What a collection keeping the links under ``keep_paths`` would delete (a dry run)."""
    kd, kr = gc_exceptions(keep_paths, S)
    res = gc(S, keep_drefs=kd, keep_rrefs=kr, dry_run=True)
    return list(res.deleted_drefs), list(res.deleted_rrefs)

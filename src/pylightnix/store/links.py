"""Result links: relative symlinks to store objects, like Nix's ``result``.

``linkrref`` points a link at a realization and registers it as a GC root
(:mod:`pylightnix.store.roots`): while the link points there, garbage
collection keeps the realization. Moving or deleting the link drops the
protection (the collector prunes the stale root entry).

``linkdref`` points a link at a derivation folder, for browsing its config
and realizations. It is deliberately *not* a GC root: a derivation's
realizations come and go (``force_rebuild``, ``rmref``), and a root must name
what it keeps alive exactly.

Links are made atomically (a temporary symlink renamed over the name), so a
reader never sees a half-made or missing link while one is replaced. An
existing file or folder that is not a symlink is never replaced.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from pylightnix.errors import StoreError
from pylightnix.refs import dref_name, rref_name
from pylightnix.store.fsops import unique_suffix
from pylightnix.store.query import dref2path_checked, rref2path, rrefbstart
from pylightnix.store.roots import register_root, unregister_root
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, Path, RRef


def _symlink_atomic(target_abs: str, link: str) -> Path:
    d = os.path.dirname(link) or "."
    if not os.path.isdir(d):
        raise StoreError(
            f"cannot make the result link {link!r}: the folder {d!r} does not exist", path=d
        )
    if os.path.lexists(link) and not os.path.islink(link):
        raise StoreError(
            f"cannot make the result link {link!r}: a file or folder of that name exists and "
            "is not a symlink (move it away, or pass another name=)",
            path=link,
        )
    rel = os.path.relpath(os.path.realpath(target_abs), os.path.realpath(d))
    tmp = os.path.join(d, f".{os.path.basename(link)}.tmp-{unique_suffix()}")
    os.symlink(rel, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(link)


TIME_FORMAT = "%y%m%d-%H:%M:%S:%f%z"
"""The original's time stamp format (local time), e.g. ``200509-00:20:19:089121+0300``."""


def timestring(sec: float | None = None) -> str:
    """``sec`` (default: now) in :data:`TIME_FORMAT`, local time zone.

    >>> parsetime(timestring(1588972819.089121))
    1588972819.089121
    """
    t = time.time() if sec is None else sec
    return datetime.fromtimestamp(t).astimezone().strftime(TIME_FORMAT)


def parsetime(s: str | float) -> float | None:
    """Seconds since the epoch of a :data:`TIME_FORMAT` string, or ``None`` if malformed
    (a number, as :func:`rrefbstart` returns, is already seconds)."""
    if isinstance(s, int | float):
        return float(s)
    try:
        return datetime.strptime(s, TIME_FORMAT).timestamp()
    except ValueError:
        return None


def _format_name(format: str, ref: str, name: str, bstart: float | None) -> str:
    """A link name from the original's ``format``: ``%(T)s`` build start, ``%(N)s`` name."""
    keys = {"N": name, "T": timestring(bstart) if bstart is not None else ""}
    try:
        out = format % keys
    except (KeyError, ValueError, TypeError) as e:
        raise StoreError(
            f"link format {format!r} for {ref}: {e!r}; use %(N)s (name) and %(T)s "
            "(build start time) only",
            path=None,
        ) from e
    if not out or "/" in out or out in (".", ".."):
        raise StoreError(f"link format {format!r} for {ref} gives the bad name {out!r}", path=None)
    return out


def linkrref(
    rref: RRef,
    destdir: str | None = ".",
    name: str | None = None,
    S: StorageSettings | None = None,
    *,
    format: str | None = None,
) -> Path:
    """Make (or move) the relative symlink ``destdir/name`` to a realization; a GC root.

    Args:
        rref: the realization.
        destdir: the folder of the link (must exist).
        name: the link's name (default ``result-<stage name>``).
        S: the store.
        format: instead of ``name``, the original's name pattern: ``%(N)s`` is
            the stage name, ``%(T)s`` the build start time (``timestring``).

    Returns:
        The link's path (``destdir/name``).

    Raises:
        RefError: ``rref`` is malformed or not stored.
        StoreError: ``destdir`` is missing, or ``name`` is taken by a non-link.
    """
    s = fsS(S)
    target = rref2path(rref, s)
    if format is not None and name is None:
        name = _format_name(format, rref, rref_name(rref), rrefbstart(rref, s))
    link = os.path.join(destdir or ".", name or f"result-{rref_name(rref)}")
    out = _symlink_atomic(target, link)
    register_root(s, out)
    return out


def linkdref(
    dref: DRef,
    destdir: str | None = ".",
    name: str | None = None,
    S: StorageSettings | None = None,
    *,
    format: str | None = None,
) -> Path:
    """Make (or move) the relative symlink ``destdir/name`` to a derivation folder.

    Not a GC root (see the module doc). The default name is
    ``result-<stage name>-drv``, so it never takes the place of a
    :func:`linkrref` link of the same stage.

    Raises:
        RefError: ``dref`` is malformed or not stored.
        StoreError: ``destdir`` is missing, or ``name`` is taken by a non-link.
    """
    s = fsS(S)
    target = dref2path_checked(dref, s)
    if format is not None and name is None:
        name = _format_name(format, dref, dref_name(dref), None)
    link = os.path.join(destdir or ".", name or f"result-{dref_name(dref)}-drv")
    unregister_root(s, link)
    return _symlink_atomic(target, link)


def linkrrefs(
    rrefs: Iterable[RRef],
    destdir: str | None = ".",
    S: StorageSettings | None = None,
    *,
    format: str | None = None,
) -> list[Path]:
    """Link several realizations (each a GC root).

    Names are ``result-<stage name>``; when several RRefs share a stage name,
    ``result-<stage name>-1``, ``-2``... in the given order.

    With ``format`` (see :func:`linkrref`) each link is named by the pattern.

    Returns:
        The links, in the order of ``rrefs``.
    """
    rs = list(rrefs)
    if format is not None:
        return [linkrref(r, destdir, None, S, format=format) for r in rs]
    counts = Counter(rref_name(r) for r in rs)
    seen: Counter[str] = Counter()
    out: list[Path] = []
    for r in rs:
        n = rref_name(r)
        seen[n] += 1
        name = f"result-{n}" if counts[n] == 1 else f"result-{n}-{seen[n]}"
        out.append(linkrref(r, destdir, name, S))
    return out


def unlinkrref(link: str, S: StorageSettings | None = None) -> None:
    """Remove a result link and its GC root entry (a missing link is fine).

    Raises:
        StoreError: ``link`` exists but is not a symlink.
    """
    s = fsS(S)
    if os.path.lexists(link):
        if not os.path.islink(link):
            raise StoreError(f"{link!r} is not a result link (not a symlink)", path=link)
        os.unlink(link)
    unregister_root(s, link)

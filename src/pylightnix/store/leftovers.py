"""What crashed or finished processes leave behind, and who owns a temporary name.

Temporary names carry their maker's pid (``mkdtemp_in``, ``unique_suffix``):
a collection removes what processes that no longer run left, and leaves
the rest to their owners (builds in progress, paused REPL sessions, kept
failed builds).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Container

from pylightnix.refs import maybe_parse_dref_dirname
from pylightnix.store.gcgraph import StoreGraph, listdir_store
from pylightnix.store.layout import LOCKS_DIR, ROOTS_DIR
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef

_MKDTEMP_NAME = re.compile(r"-(\d+)-[A-Za-z0-9_]{8}$")
_UNIQUE_NAME = re.compile(r"^\.?[a-z]+-(\d+)-[0-9a-f]{12}(-|$)")
_ROOT_TMP_NAME = re.compile(r"\.tmp-(\d+)-[0-9a-f]{12}$")


def temp_owner(name: str) -> int | None:
    """The pid a temporary name records (``mkdtemp_in``, ``unique_suffix``), if any.

    >>> temp_owner("build-train-4242-k2j4_x9a"), temp_owner("trash-77-0a1b2c3d4e5f-x")
    (4242, 77)
    >>> temp_owner(".tmp-12-0a1b2c3d4e5f-config.json"), temp_owner("ab.tmp-5-0a1b2c3d4e5f")
    (12, 5)
    >>> temp_owner("notes") is None
    True
    """
    m = _MKDTEMP_NAME.search(name) or _UNIQUE_NAME.search(name) or _ROOT_TMP_NAME.search(name)
    return int(m.group(1)) if m else None


def _owner_alive(name: str) -> bool:
    """Whether the process that made this temporary entry still runs (then it is kept).

    Builds, imports and writes of other processes run during a collection,
    and a paused REPL session or a kept failed build owns its folders
    between calls: what a live process made is left to it.
    """
    pid = temp_owner(name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def tmp_leftovers(S: StorageSettings, g: StoreGraph, own_trash: str | None) -> list[str]:
    """Temporary entries of dead processes: temp space, derivation folders, roots, storage."""
    out = [
        os.path.join(S.tmpdir, n)
        for n in listdir_store(S.tmpdir, "its temporary space")
        if not _owner_alive(n) and os.path.join(S.tmpdir, n) != own_trash
    ]
    out.extend(p for p in g.drv_tmp if not _owner_alive(os.path.basename(p)))
    rdir = os.path.join(S.storage, ROOTS_DIR)
    out.extend(
        os.path.join(rdir, n)
        for n in listdir_store(rdir, "GC roots")
        if ".tmp-" in n and not _owner_alive(n)
    )
    out.extend(
        os.path.join(S.storage, n)
        for n in listdir_store(S.storage, "its derivations")
        if n.startswith(".tmp-") and not _owner_alive(n)
    )
    return sorted(out)


def dead_lockfiles(S: StorageSettings, live: Container[DRef]) -> list[str]:
    """The build lock files of derivations that are not ``live``."""
    d = os.path.join(S.storage, LOCKS_DIR)
    out = []
    for n in sorted(listdir_store(d, "its lock files")):
        # Only build locks (named after a derivation folder): other lock files
        # may belong to code that takes them outside the GC lock.
        dref = maybe_parse_dref_dirname(n[: -len(".lock")]) if n.endswith(".lock") else None
        if dref is not None and dref not in live:
            out.append(os.path.join(d, n))
    return out


def orphan_locks(g: StoreGraph, locks: list[str]) -> list[str]:
    """The lock files whose derivation was already gone: leftovers (the others go with
    their derivation and are not reported apart)."""
    return [
        p
        for p in locks
        if maybe_parse_dref_dirname(os.path.basename(p)[: -len(".lock")]) not in g.drv_rrefs
    ]


def unlink_lockfile(path: str) -> bool:
    """Remove a build lock file unless some process holds it (then it is kept)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)

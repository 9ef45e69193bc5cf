"""Verification: re-hash realizations and report those that no longer match their RRef.

A realization is sound when its reserved files are present and readable,
its artifacts hash (with :func:`~pylightnix.hashing.hash_tree`, the reserved
folder left out) together with its stored context (with
:func:`~pylightnix.hashing.context_hash`) to its own RRef hash, and no file or
folder in it is writable. Its derivation's ``config.json`` must also hash to
the DRef. Damage comes from editing the store by hand, as root, or from the
disk; the realize engine never produces it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pylightnix.config import config_hash, config_name, mkconfig
from pylightnix.errors import OptionError, StoreError
from pylightnix.gcpause import library_work
from pylightnix.hashing import (
    context_hash,
    failed_realization_hash,
    hash_tree,
    realization_hash,
)
from pylightnix.refs import parse_dref, parse_rref, rref2dref
from pylightnix.store.fsops import remove_tree, remove_via_trash
from pylightnix.store.gcgraph import read_json
from pylightnix.store.layout import (
    CONFIG_FILE,
    CONTEXT_FILE,
    FAILURE_FILE,
    META_FILE,
    RESERVED,
    RESERVED_FILES,
    check_store,
    dref2path,
    rref2path_,
)
from pylightnix.store.locks import gc_exclusive
from pylightnix.store.query import derivation_folders
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import Context, DRef, Path, RRef

Repair = Literal["remove", "quarantine"]
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_RESERVED_SET = frozenset(RESERVED_FILES)


@dataclass(frozen=True)
class DamagedRealization:
    """One damaged realization.

    Attributes:
        rref: the realization.
        reason: what is wrong, in words.
        action: ``"removed"``, ``"quarantined to <path>"`` or ``""`` (reported only).
    """

    rref: RRef
    reason: str
    action: str = ""


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    Attributes:
        checked: every realization that was checked, sorted.
        damaged: the damaged ones (a subset of ``checked``), sorted by RRef.
    """

    checked: tuple[RRef, ...]
    damaged: tuple[DamagedRealization, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing was damaged."""
        return not self.damaged


def read_context_file(path: str) -> Context:
    """Parse a stored ``context.json``.

    Raises:
        ValueError: it is not a JSON object of DRef -> list of RRefs.
    """
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ValueError("context.json is not a JSON object")
    out: Context = {}
    for k, v in raw.items():
        if not isinstance(v, list):
            raise ValueError(f"context entry {k!r} is not a list")
        for x in v:
            parse_rref(x)
        out[DRef(k)] = [RRef(x) for x in v]
    return out


def config_problem(ddir: str, dref: DRef, *, rehash: bool = True) -> str | None:
    """Why the derivation folder's ``config.json`` does not belong to ``dref`` (or ``None``).

    ``rehash=False`` only checks that it is there and is a JSON object
    (:func:`verify` of a whole store only that it is there).
    """
    try:
        with open(os.path.join(ddir, CONFIG_FILE), "rb") as f:
            raw = json.loads(f.read())
        if not rehash:
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            return None
        cfg = mkconfig(raw)
    except FileNotFoundError:
        return f"the config.json of its derivation {dref} is missing"
    except (OSError, ValueError) as e:
        return f"the config.json of its derivation {dref} is unreadable ({e})"
    dhash, name = parse_dref(dref)
    if config_hash(cfg) != dhash or config_name(cfg) != name:
        return f"the config.json of its derivation {dref} does not hash to {dref}"
    return None


def writable_entry(path: str, *, reserved: set[str] | None = None) -> str | None:
    """The first file or folder inside the folder ``path`` with a write bit, if any.

    ``reserved``, when given, receives the names in the reserved folder (the
    walk lists it anyway), a name that is not a regular file with a ``/``
    appended (no file can have that name).

    The top folder itself is not checked: it must be writable while it is
    renamed into the store and is made read-only right after, so a crash in
    between leaves it writable with its content complete; GC seals it.
    """
    if not _any_writable(path, reserved):
        return None
    # Damage found: walk again, in name order, to name the first writable entry.
    stack = [path]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for e in entries:
            m = e.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(m):
                continue
            if m & _WRITE_BITS:
                return e.path
            if stat.S_ISDIR(m):
                subdirs.append(e.path)
        stack.extend(reversed(subdirs))  # depth first, in name order
    return None


def _any_writable(path: str, reserved: set[str] | None) -> bool:
    """Whether an entry inside ``path`` has a write bit (one ``lstat`` each, in no
    particular order). ``reserved`` receives the names in the reserved folder, a
    name that is not a regular file with a ``/`` appended (no file has that name)."""
    stack = [path]
    names = reserved if reserved is not None else set()
    res = os.path.join(path, RESERVED) if reserved is not None else None
    found = False
    while stack:
        d = stack.pop()
        in_res = d == res
        with os.scandir(d) as it:
            for e in it:
                m = e.stat(follow_symlinks=False).st_mode
                if in_res:
                    names.add(e.name if stat.S_ISREG(m) else e.name + "/")
                if m & _WRITE_BITS and not stat.S_ISLNK(m):
                    if reserved is None:
                        return True
                    found = True
                if stat.S_ISDIR(m):
                    stack.append(e.path)
    return found


def reserved_folder_problem(res: str) -> str | None:
    """Why the reserved folder ``res`` is missing, unreadable or holds strays (or ``None``)."""
    if not os.path.isdir(res) or os.path.islink(res):
        return f"its reserved folder {RESERVED} is missing"
    try:
        return reserved_entries_problem(res)
    except OSError as e:
        return f"its reserved folder {RESERVED} is unreadable ({e})"


def reserved_entries_problem(res: str) -> str | None:
    """Why the reserved folder ``res`` holds something the store never writes (or ``None``).

    Only regular files named in :data:`~pylightnix.store.layout.RESERVED_FILES`
    belong there: a stray file could pass for the store's own (a reader would
    trust it), and a symlink would lead reads out of the store.
    """
    known = ", ".join(RESERVED_FILES)
    for n in sorted(os.listdir(res)):
        if n not in RESERVED_FILES:
            return (
                f"its reserved folder {RESERVED} holds {n!r}, which the store never writes "
                f"(only {known} belong there)"
            )
        if not stat.S_ISREG(os.lstat(os.path.join(res, n)).st_mode):
            return f"its reserved file {RESERVED}/{n} is not a regular file (a link or folder)"
    return None


def _reserved_context(path: str) -> Context | str:
    """The stored context of a realization folder, or why its reserved files are bad."""
    res = os.path.join(path, RESERVED)
    why = reserved_folder_problem(res)
    if why is not None:
        return why
    try:
        ctx = read_context_file(os.path.join(res, CONTEXT_FILE))
        with open(os.path.join(res, META_FILE), "rb") as fm:
            meta = json.loads(fm.read())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        # Opened directly (no stat first): name the file that is not there.
        name = META_FILE if e.filename and e.filename.endswith(META_FILE) else CONTEXT_FILE
        if not os.path.isfile(os.path.join(res, name)):
            return f"its reserved file {RESERVED}/{name} is missing"
        return f"its reserved files are unreadable ({e})"
    except (OSError, ValueError) as e:
        return f"its reserved files are unreadable ({e})"
    if not isinstance(meta, dict):
        return f"its {RESERVED}/{META_FILE} is not a JSON object"
    return ctx


def realization_problem(path: str, rref: RRef, *, rehash: bool = True) -> str | None:
    """Why the folder ``path`` is not a sound realization ``rref`` (or ``None``).

    ``rehash=False`` checks all but the content hash: the folder, its
    reserved files (present and well-formed) and its read-only modes.
    """
    if not rehash:
        return structure_problem(path)
    why = content_problem(path, rref)
    if why is not None:
        return why
    w = writable_entry(path)
    if w is not None:
        return f"{os.path.relpath(w, path)!r} in it is writable (realizations are read-only)"
    return None


def structure_problem(path: str) -> str | None:
    """Why the folder ``path`` is not a sound realization, its content not hashed.

    One walk checks the modes and sees the reserved files; only
    ``context.json`` is read (what GC and queries parse).
    """
    seen: set[str] = set()
    try:
        w = writable_entry(path, reserved=seen)
    except (FileNotFoundError, NotADirectoryError):
        return "its folder is missing"
    if not seen or not seen <= _RESERVED_SET:
        why = reserved_folder_problem(os.path.join(path, RESERVED))
        if why is not None:
            return why
    for name in (CONTEXT_FILE, META_FILE):
        if name not in seen:
            return f"its reserved file {RESERVED}/{name} is missing"
    try:
        read_context_file(os.path.join(path, RESERVED, CONTEXT_FILE))
    except (OSError, ValueError) as e:
        return f"its reserved files are unreadable ({e})"
    if w is not None:
        return f"{os.path.relpath(w, path)!r} in it is writable (realizations are read-only)"
    return None


def content_problem(path: str, rref: RRef) -> str | None:
    """Why the folder ``path`` does not hold the content of ``rref`` (modes not checked)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return "its folder is missing"
    ctx = _reserved_context(path)
    if isinstance(ctx, str):
        return ctx
    try:
        tree = hash_tree(path, exclude=[RESERVED])
    except (StoreError, OSError) as e:
        return f"its content cannot be hashed ({e})"
    rhash = parse_rref(rref)[0]
    fpath = os.path.join(path, RESERVED, FAILURE_FILE)
    if os.path.isfile(fpath):
        # A failed realization (kept for inspection) hashes its failure record too.
        try:
            with open(fpath, "rb") as f:
                actual = failed_realization_hash(context_hash(ctx), tree, f.read())
        except OSError as e:
            return f"its {RESERVED}/{FAILURE_FILE} is unreadable ({e})"
    else:
        actual = realization_hash(context_hash(ctx), tree)
    if actual != rhash:
        return f"its content hashes to {actual}, not {rhash} (edited or corrupted)"
    return None


def verify(
    rrefs: Iterable[RRef] | None = None,
    S: StorageSettings | None = None,
    *,
    repair: Repair | None = None,
    rehash: bool = True,
) -> VerifyResult:
    """Re-hash realizations and report every one whose content no longer matches its RRef.

    Args:
        rrefs: the realizations to check (default: every one in the store).
        S: the store (default: the current one).
        repair: ``None`` to only report; ``"remove"`` to delete damaged
            realizations; ``"quarantine"`` to move them to ``<root>/quarantine/``
            for inspection. Repairing waits until no realize runs.
        rehash: ``False`` checks everything but the content hashes (folders,
            reserved files, read-only modes, configs): a small constant per
            realization instead of reading every byte.

    Returns:
        a :class:`VerifyResult`.

    Raises:
        OptionError: ``repair`` is not one of the above.
        RefError: an entry of ``rrefs`` is not a valid RRef.
        LockError: repairing inside a realize of this process.
    """
    if repair not in (None, "remove", "quarantine"):
        raise OptionError(
            f"repair={repair!r}: expected None, 'remove' or 'quarantine'",
            option="repair",
            value=repair,
        )
    s = fsS(S)
    check_store(s)
    chosen = None if rrefs is None else [RRef(r) for r in rrefs]
    for r in chosen or []:
        parse_rref(r)
    with library_work():
        return _verify(s, chosen, repair, rehash)


def _verify(
    s: StorageSettings, chosen: list[RRef] | None, repair: Repair | None, rehash: bool
) -> VerifyResult:
    # Checking only reads: it takes no lock (a read-only store verifies too).
    # Repair takes the GC lock exclusively only around each removal.
    cfg_problems: dict[DRef, str | None] = {}
    todo: list[tuple[RRef, DRef, str]]
    if chosen is None:
        listed = list(derivation_folders(s))
        todo = sorted((r, d, p) for d, _, folders in listed for r, p in folders)
        if not rehash:
            # The listing saw which derivations have their config.json.
            cfg_problems = {
                d: None if has_config else config_problem(dref2path(d, s), d)
                for d, has_config, folders in listed
                if folders
            }
    else:
        todo = [(r, rref2dref(r), rref2path_(r, s)) for r in sorted(set(chosen))]
    damaged: list[DamagedRealization] = []
    for r, d, path in todo:
        if d not in cfg_problems:
            cfg_problems[d] = config_problem(dref2path(d, s), d, rehash=rehash)
        why = realization_problem(path, r, rehash=rehash) or cfg_problems[d]
        if why is None:
            continue
        action = ""
        if repair:
            with gc_exclusive(s):
                action = _repair(s, r, repair)
        damaged.append(DamagedRealization(r, why, action))
    return VerifyResult(tuple(r for r, _, _ in todo), tuple(damaged))


def _repair(S: StorageSettings, rref: RRef, how: Repair) -> str:
    p = rref2path_(rref, S)
    if not os.path.lexists(p):
        return ""
    if how == "remove":
        remove_via_trash(p, S.tmpdir)
        return "removed"
    rhash, dhash, name = parse_rref(rref)
    qdir = os.path.join(S.root, "quarantine", f"{dhash}-{name}")
    os.makedirs(qdir, exist_ok=True)
    dst = os.path.join(qdir, rhash)
    n = 1
    while os.path.lexists(dst):
        dst = os.path.join(qdir, f"{rhash}.{n}")
        n += 1
    os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | stat.S_IWUSR)
    try:
        os.rename(p, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        # The root is on another filesystem than a custom storage folder.
        shutil.copytree(p, dst, symlinks=True)
        remove_tree(p)
    return f"quarantined to {Path(dst)}"

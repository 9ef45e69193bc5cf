"""Atomic insertion of derivations and realizations into the store.

Crash windows (each is safe):

* a derivation folder is assembled in ``tmpdir`` and renamed into place: a
  crash leaves a temp folder, never a derivation without ``config.json``;
* a realization's index line is appended *before* the realization is
  renamed into place; queries check that the realization exists, so a
  line left by a crash is harmless and GC drops it;
* every object is registered as a temporary root of the inserting process
  (``temproots.py``) before its folder, marker or rename can be seen, so a
  concurrent collection never takes it for garbage;
* the realization folder is complete and read-only (but for its top
  folder, which must stay writable to be renamed) before the rename, and
  the top folder is made read-only right after it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import time
from dataclasses import dataclass
from typing import Any

from pylightnix.config import Config, config_serialize
from pylightnix.errors import StoreError
from pylightnix.hashing import (
    context_json,
    context_json_hash,
    digest_tree,
    realization_hash,
    walk_tree,
)
from pylightnix.refs import mkrref, parse_dref
from pylightnix.store.facts import read_bstart
from pylightnix.store.fsops import (
    atomic_write,
    fsync_path,
    make_readonly,
    mkdtemp_in,
    private_copy,
    remove_tree,
    remove_via_trash,
    rename_noreplace,
    store_stage,
    this_pid,
    write_private,
)
from pylightnix.store.index import append_index, realization_line
from pylightnix.store.layout import (
    CONFIG_FILE,
    CONTEXT_FILE,
    INDEX_FILE,
    LOG_FILE,
    META_FILE,
    RESERVED,
    dref2path,
    is_whole,
)
from pylightnix.store.settings import StorageSettings
from pylightnix.store.temproots import add_temproots
from pylightnix.types import Context, DRef, RRef


def store_derivation(S: StorageSettings, dref: DRef, config: Config) -> bool:
    """Make sure the derivation ``dref`` with ``config`` is in the store.

    Returns whether this call created it. Two processes may race: one rename
    wins, the other finds the folder in place. A derivation this call writes
    is registered as a temporary root first; one that is already stored is
    the caller's to register (instantiate does it in one batch).
    """
    d = dref2path(dref, S)
    cfg_path = f"{d}{os.sep}{CONFIG_FILE}"
    # access() and not exists(): the same answer without building a stat result
    # (a visible part of instantiating a large closure of stored derivations).
    if os.access(cfg_path, os.F_OK):
        return False
    add_temproots(S, [dref])
    data = config_serialize(config)
    with store_stage(f"writing the derivation {dref}", d):
        tmp = mkdtemp_in(S.tmpdir, "drv")
        moved = False
        try:
            write_private(f"{tmp}{os.sep}{CONFIG_FILE}", data, durable=S.durable)
            os.chmod(tmp, 0o755)
            # An empty folder in place is replaced; one with contents stays.
            moved = rename_noreplace(tmp, d)
        finally:
            if not moved:
                remove_tree(tmp)
        if moved:
            if S.durable:
                fsync_path(S.storage)
            return True
        if os.path.exists(cfg_path):
            return False  # another process stored it meanwhile
        # The folder exists without its config (damaged store): restore it in place.
        atomic_write(cfg_path, data, durable=S.durable)
        return True


_HOST: list[str] = []
"""This machine's host name, looked up once per process (``meta.json`` of every realization)."""
_META_JSON = json.JSONEncoder(sort_keys=True, indent=1)
_JSON_STR = json.JSONEncoder()


def _hostname() -> str:
    if not _HOST:
        import socket  # lazily: start-up (issue 15)

        _HOST.append(socket.gethostname())
    return _HOST[0]


def meta_json(build_start: float, build_stop: float, extra: dict[str, Any] | None) -> bytes:
    """The ``meta.json`` bytes of a realization (build times, host, pid; never hashed)."""
    host = _hostname()
    if (
        not extra
        and type(build_start) is float
        and type(build_stop) is float
        and math.isfinite(build_start + build_stop)
    ):
        # What the encoder below writes for these four keys, without its pure-Python
        # indenting path (a visible part of a trivial build).
        return (
            f'{{\n "build_start": {build_start!r},\n "build_stop": {build_stop!r},\n'
            f' "host": {_JSON_STR.encode(host)},\n "pid": {this_pid()}\n}}'
        ).encode()
    m: dict[str, Any] = {
        "build_start": build_start,
        "build_stop": build_stop,
        "host": host,
        "pid": this_pid(),
    }
    if extra:
        m.update(extra)
    return _META_JSON.encode(m).encode()


def _not_a_folder(dref: DRef, outpath: str) -> StoreError:
    return StoreError(
        f"output {outpath!r} of {dref} is not a folder: a realizer must return folders",
        path=outpath,
    )


def _reserved_inside(dref: DRef, outpath: str) -> StoreError:
    reserved = os.path.join(outpath, RESERVED)
    return StoreError(
        f"output {outpath!r} of {dref} contains {RESERVED!r}, a name reserved for "
        "the store's own files: rename that artifact",
        path=reserved,
    )


def _odd_inside(dref: DRef, outpath: str, path: str) -> StoreError:
    return StoreError(
        f"output {outpath!r} of {dref} holds {path!r}, which is not a "
        "regular file, folder or symlink (sockets, FIFOs and devices cannot "
        "be stored; remove it from the output)",
        path=path,
    )


def _top_stat(dref: DRef, outpath: str) -> os.stat_result:
    """The ``lstat`` of an output folder; raise unless it is a folder (not a symlink to one)."""
    try:
        st = os.lstat(outpath)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_a_folder(dref, outpath) from None
    if not stat.S_ISDIR(st.st_mode):
        raise _not_a_folder(dref, outpath)
    return st


def check_output(dref: DRef, outpath: str, *, walk: bool = True) -> None:
    """Raise unless ``outpath`` is an output folder that :func:`store_realization` accepts.

    The engine checks every output of a build before inserting any, so a bad
    output never leaves its siblings stored by a build that failed.

    Args:
        dref: the derivation the output belongs to (for the message).
        outpath: the output folder.
        walk: also look for FIFOs, sockets and devices in the whole tree.

    Raises:
        StoreError: not a folder (or a symlink to one), holds the reserved
            name, or holds something other than files, folders and symlinks.
    """
    _top_stat(dref, outpath)
    if os.path.lexists(os.path.join(outpath, RESERVED)):
        raise _reserved_inside(dref, outpath)
    stack = [outpath] if walk else []
    while stack:
        with os.scandir(stack.pop()) as it:
            for de in it:
                if de.is_dir(follow_symlinks=False):
                    stack.append(de.path)
                elif not (de.is_file(follow_symlinks=False) or de.is_symlink()):
                    raise _odd_inside(dref, outpath, de.path)


_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_RESERVED_B = os.fsencode(RESERVED)


@dataclass(frozen=True)
class ScannedOutput:
    """An output folder checked, freed of shared files and hashed, in one walk
    (:func:`scan_output`); what :func:`store_realization` needs to seal it."""

    path: str
    dev: int
    tree: str
    writable: tuple[tuple[str, int], ...]
    """Files and folders below the top that still have write bits, with their read-only modes."""


def scan_output(dref: DRef, outpath: str, S: StorageSettings | None = None) -> ScannedOutput:
    """Check an output folder, give its hard-linked files private copies and hash it:
    one ``scandir``/``lstat`` pass over the tree and one read of each file.

    What :func:`check_output` checks (with its messages), then (given the store
    ``S``) that the folder is on the store's filesystem, then what
    :func:`~pylightnix.store.fsops.unshare_hardlinks` does (before hashing: a file
    shared with the outside could change after it), then the tree hash. Nothing
    is changed in a folder that fails a check.

    Raises:
        StoreError: as :func:`check_output`; on another filesystem than ``S``.
    """
    top = _top_stat(dref, outpath)
    if S is not None:
        _check_dev(S, dref, outpath, top.st_dev)
    w = walk_tree(outpath)
    if any(e.name == _RESERVED_B for e in w.dirs[0][1]):
        raise _reserved_inside(dref, outpath)
    if w.odd:
        raise _odd_inside(dref, outpath, w.odd[0].path)
    writable: list[tuple[str, int]] = []
    for _, entries in w.dirs:
        for e in entries:
            if e.kind == b"l":
                continue
            m = e.st.st_mode
            if e.kind != b"d" and e.st.st_nlink > 1:
                private_copy(e.path, e.st)  # same bits: the copy gets the file's mode
            if m & _WRITE_BITS:
                writable.append((e.path, stat.S_IMODE(m) & ~_WRITE_BITS))
    return ScannedOutput(outpath, top.st_dev, digest_tree(w), tuple(writable))


def _seal(sc: ScannedOutput, reserved: str, linked_log: str | None) -> None:
    """Make a scanned output read-only but for its top folder (what make_readonly does)."""
    for p, mode in sc.writable:
        os.chmod(p, mode)
    if linked_log is not None:
        st = os.lstat(linked_log)
        if st.st_mode & _WRITE_BITS:
            os.chmod(linked_log, stat.S_IMODE(st.st_mode) & ~_WRITE_BITS)
    # The store's own files have fixed modes (reserved files 0444, as the top folder
    # gets 0555 once in place), whatever the umask.
    os.chmod(reserved, 0o555)


_DEVS: dict[str, int] = {}


def _store_dev(S: StorageSettings) -> int:
    """The device of the store's folder (looked up once per process and store)."""
    dev = _DEVS.get(S.storage)
    if dev is None:
        dev = _DEVS[S.storage] = os.stat(S.storage).st_dev
    return dev


def _check_dev(S: StorageSettings, dref: DRef, outpath: str, dev: int) -> None:
    """Raise unless the device ``dev`` of the output folder is the store's."""
    if dev != _store_dev(S):
        raise StoreError(
            f"output {outpath!r} of {dref} is on another filesystem than the store "
            f"{S.storage!r}, so it cannot be moved in atomically: create outputs under the "
            "store's temporary folder (build_wrapper does; a raw realizer can use "
            "build_tmpdir(S))",
            path=outpath,
        )


def store_realization(
    S: StorageSettings,
    dref: DRef,
    config: Config,
    context: Context,
    outpath: str,
    *,
    build_start: float,
    build_stop: float | None = None,
    meta: dict[str, Any] | None = None,
    log_path: str | None = None,
    link_log: bool = False,
    scanned: ScannedOutput | None = None,
    derivation_stored: bool = False,
) -> RRef:
    """Move a finished output folder into the store and return its RRef.

    The folder is hashed (with the context), given its reserved files, made
    read-only and renamed into place; ``outpath`` no longer exists afterwards.
    If an identical realization is already stored, that one is kept.
    ``log_path`` (the build's captured output) is copied in as ``build.log``
    unless it is empty (a silent build has no ``build.log``: readers take a
    missing log for an empty one); with ``link_log`` it is hard-linked instead
    (no new file, no copy: the caller gives no other output the same link and
    never writes to ``log_path`` again, so the realization's log shares its
    inode with nothing it could change).

    ``scanned`` is :func:`scan_output` of ``outpath`` when the caller made it
    already (the engine scans every output before inserting any), and
    ``derivation_stored`` says the caller made sure the derivation is stored
    and registered as a temporary root of this process.

    Raises:
        StoreError: the output is not a folder or uses the reserved name.
    """
    if scanned is None:
        sc = scan_output(dref, outpath, S)  # checks the device too
    else:
        sc = scanned
        _check_dev(S, dref, outpath, sc.dev)
    reserved = f"{outpath}{os.sep}{RESERVED}"
    ctx_json = context_json(context)
    chash = context_json_hash(ctx_json)
    rhash = realization_hash(chash, sc.tree)
    dhash, name = parse_dref(dref)
    rref = mkrref(rhash, dhash, name)
    stop = time.time() if build_stop is None else build_stop

    with store_stage(f"writing the reserved files ({RESERVED}) of an output of {dref}", reserved):
        os.mkdir(reserved)
        # No fsync per reserved file: make_readonly(durable=...) below flushes every
        # file and folder of the output once, the reserved ones included.
        # The output folder is private until it is renamed into place: plain writes suffice.
        write_private(f"{reserved}{os.sep}{CONTEXT_FILE}", ctx_json)
        write_private(f"{reserved}{os.sep}{META_FILE}", meta_json(build_start, stop, meta))
        linked = None
        if log_path is not None and os.stat(log_path).st_size > 0:
            linked = f"{reserved}{os.sep}{LOG_FILE}"
            try:
                if not link_log:
                    raise OSError("copy")
                os.link(log_path, linked)
            except OSError:
                shutil.copyfile(log_path, linked)
        if S.durable:
            make_readonly(outpath, durable=True, skip_top=True)
        else:
            _seal(sc, reserved, linked)

    if not derivation_stored:
        store_derivation(S, dref, config)
    place_realization(S, dref, chash, rhash, outpath, bstart=build_start)
    return rref


def place_realization(
    S: StorageSettings,
    dref: DRef,
    chash: str,
    rhash: str,
    folder: str,
    *,
    failed: bool = False,
    bstart: float | None = None,
) -> bool:
    """Index a complete realization folder and rename it into place.

    ``folder`` holds the artifacts and the reserved files, is read-only but
    for its top folder, and hashes to ``rhash`` in the context ``chash``; the
    derivation is stored. The index line is appended first (a crash leaves at
    most a line without its folder, which lookups skip); a failed realization
    is indexed apart, where matchers never look. ``bstart`` is the build start
    time in its ``meta.json`` (read from there when not given). Returns
    whether it moved; if the same realization is already stored, ``folder``
    is removed instead.
    """
    # Registered before the line and the rename: a collection that can see
    # either also sees the registration (docs/gc.md, race windows).
    add_temproots(S, [mkrref(rhash, *parse_dref(dref)), dref])  # type: ignore[arg-type]
    ddir = dref2path(dref, S)
    dst = os.path.join(ddir, rhash)
    if bstart is None:
        bstart = read_bstart(os.path.join(folder, RESERVED, META_FILE))
    with store_stage(f"moving a realization of {dref} into the store", dst):
        append_index(S, dref, [realization_line(rhash, chash, bstart, failed=failed)])
        if S.durable:
            # Else a power loss could keep the realization but lose its line,
            # hiding it from matchers until store_reindex.
            fsync_path(os.path.join(ddir, INDEX_FILE))
        moved = rename_noreplace(folder, dst)
        if not moved and not is_whole(dst):
            # Every insertion renames a complete folder, reserved folder included, so
            # a folder without one was damaged by hand: the fresh copy replaces it.
            remove_via_trash(dst, S.tmpdir)
            moved = rename_noreplace(folder, dst)
        if moved:
            os.chmod(dst, 0o555)
            if S.durable:
                fsync_path(ddir)
            return True
        remove_tree(folder)
        return False

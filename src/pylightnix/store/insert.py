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
import os
import shutil
import time
from typing import Any

from pylightnix.config import Config, config_serialize
from pylightnix.errors import StoreError
from pylightnix.hashing import context_hash, context_json, hash_tree, realization_hash
from pylightnix.refs import mkrref, parse_dref
from pylightnix.store.fsops import (
    atomic_write,
    fsync_path,
    make_readonly,
    mkdtemp_in,
    remove_tree,
    remove_via_trash,
    rename_noreplace,
    store_stage,
    unshare_hardlinks,
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
    cfg_path = os.path.join(d, CONFIG_FILE)
    if os.path.exists(cfg_path):
        return False
    add_temproots(S, [dref])
    data = config_serialize(config)
    with store_stage(f"writing the derivation {dref}", d):
        if os.path.isdir(d):
            # The folder exists without its config (damaged store): restore it in place.
            atomic_write(cfg_path, data, durable=S.durable)
            return True
        tmp = mkdtemp_in(S.tmpdir, "drv")
        try:
            write_private(os.path.join(tmp, CONFIG_FILE), data, durable=S.durable)
            os.chmod(tmp, 0o755)
            moved = rename_noreplace(tmp, d)
            if moved and S.durable:
                fsync_path(S.storage)
            return moved
        finally:
            remove_tree(tmp)


def meta_json(build_start: float, build_stop: float, extra: dict[str, Any] | None) -> bytes:
    """The ``meta.json`` bytes of a realization (build times, host, pid; never hashed)."""
    import socket  # lazily: start-up (issue 15)

    m: dict[str, Any] = {
        "build_start": build_start,
        "build_stop": build_stop,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    if extra:
        m.update(extra)
    return json.dumps(m, sort_keys=True, indent=1).encode()


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
    if not os.path.isdir(outpath) or os.path.islink(outpath):
        raise StoreError(
            f"output {outpath!r} of {dref} is not a folder: a realizer must return folders",
            path=outpath,
        )
    reserved = os.path.join(outpath, RESERVED)
    if os.path.lexists(reserved):
        raise StoreError(
            f"output {outpath!r} of {dref} contains {RESERVED!r}, a name reserved for "
            "the store's own files: rename that artifact",
            path=reserved,
        )
    stack = [outpath] if walk else []
    while stack:
        with os.scandir(stack.pop()) as it:
            for de in it:
                if de.is_dir(follow_symlinks=False):
                    stack.append(de.path)
                elif not (de.is_file(follow_symlinks=False) or de.is_symlink()):
                    raise StoreError(
                        f"output {outpath!r} of {dref} holds {de.path!r}, which is not a "
                        "regular file, folder or symlink (sockets, FIFOs and devices cannot "
                        "be stored; remove it from the output)",
                        path=de.path,
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
) -> RRef:
    """Move a finished output folder into the store and return its RRef.

    The folder is hashed (with the context), given its reserved files, made
    read-only and renamed into place; ``outpath`` no longer exists afterwards.
    If an identical realization is already stored, that one is kept.
    ``log_path`` (the build's captured output) is copied in as ``build.log``;
    with ``link_log`` it is hard-linked instead (no new file, no copy: the
    caller removes ``log_path`` and gives no other output the same link, so
    the realization's log shares its inode with nothing).

    Raises:
        StoreError: the output is not a folder or uses the reserved name.
    """
    check_output(dref, outpath, walk=False)
    if os.stat(outpath).st_dev != os.stat(S.storage).st_dev:
        raise StoreError(
            f"output {outpath!r} of {dref} is on another filesystem than the store "
            f"{S.storage!r}, so it cannot be moved in atomically: create outputs under the "
            "store's temporary folder (build_wrapper does; a raw realizer can use "
            "build_tmpdir(S))",
            path=outpath,
        )
    reserved = os.path.join(outpath, RESERVED)
    # Before hashing: a file shared with the outside could change after it.
    unshare_hardlinks(outpath)
    chash = context_hash(context)
    tree = hash_tree(outpath)
    rhash = realization_hash(chash, tree)
    dhash, name = parse_dref(dref)
    rref = mkrref(rhash, dhash, name)
    stop = time.time() if build_stop is None else build_stop

    with store_stage(f"writing the reserved files ({RESERVED}) of an output of {dref}", reserved):
        os.mkdir(reserved)
        ctx_json = context_json(context)
        # No fsync per reserved file: make_readonly(durable=...) below flushes every
        # file and folder of the output once, the reserved ones included.
        # The output folder is private until it is renamed into place: plain writes suffice.
        write_private(os.path.join(reserved, CONTEXT_FILE), ctx_json)
        write_private(os.path.join(reserved, META_FILE), meta_json(build_start, stop, meta))
        if log_path is not None:
            dst = os.path.join(reserved, LOG_FILE)
            try:
                if not link_log:
                    raise OSError("copy")
                os.link(log_path, dst)
            except OSError:
                shutil.copyfile(log_path, dst)
        make_readonly(outpath, durable=S.durable, skip_top=True)

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
        bstart = _meta_bstart(os.path.join(folder, RESERVED, META_FILE))
    with store_stage(f"moving a realization of {dref} into the store", dst):
        append_index(S, dref, [realization_line(rhash, chash, bstart, failed=failed)])
        if S.durable:
            # Else a power loss could keep the realization but lose its line,
            # hiding it from matchers until store_reindex.
            fsync_path(os.path.join(ddir, INDEX_FILE))
        moved = rename_noreplace(folder, dst)
        if not moved and not os.path.isdir(os.path.join(dst, RESERVED)):
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


def _meta_bstart(path: str) -> float:
    """The build start time in a ``meta.json`` (0 when it has none or cannot be read)."""
    try:
        with open(path, "rb") as f:
            v = json.loads(f.read()).get("build_start", 0.0)
        return float(v) if isinstance(v, int | float) else 0.0
    except (OSError, ValueError, AttributeError):
        return 0.0

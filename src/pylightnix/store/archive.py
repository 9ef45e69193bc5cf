"""Closures between stores: export to a tar archive, import from one, copy directly.

An archive holds exactly one closure: the chosen realizations, everything
they were built from (transitively), the configs of their derivations and
of every derivation those configs mention, and a manifest::

    pylightnix-closure.json            {"format", "targets", "rrefs", "drefs"}
    <dhash>-<name>/config.json
    <dhash>-<name>/<rhash>/...         artifacts + __pylightnix__/{context,meta}.json

Import never trusts the archive: it is extracted safely (no path escapes,
links out, devices) into the store's temporary space; the manifest must
describe the extracted tree exactly; every config must hash to its DRef and
every realization (artifacts + stored context) to its RRef, and every
dependency must be in the archive or already in the store. Only when all of
that holds does anything become visible, each object by one atomic rename,
dependencies first. Objects already stored are left as they are, so import
is idempotent.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from pylightnix.config import Config, config_hash, config_name, mkconfig
from pylightnix.errors import ArchiveError, IntegrityError, OptionError, RefError, StoreError
from pylightnix.hashing import context_hash
from pylightnix.refs import (
    dref_dirname,
    maybe_parse_dref,
    maybe_parse_rref,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.fsops import (
    make_readonly,
    mkdtemp_in,
    remove_tree,
    unique_suffix,
    unshare_hardlinks,
)
from pylightnix.store.insert import place_realization, store_derivation
from pylightnix.store.layout import (
    CONFIG_FILE,
    CONTEXT_FILE,
    FAILURE_FILE,
    RESERVED,
    check_store,
    rref2path_,
)
from pylightnix.store.query import dref_exists, drefdeps, rref2path, rrefctx
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.temproots import add_temproots
from pylightnix.store.verify import content_problem, read_context_file
from pylightnix.types import Context, DRef, Path, RRef

MANIFEST = "pylightnix-closure.json"
"""Name of the manifest member, first in every archive."""
ARCHIVE_FORMAT = "pylightnix-closure-v1"
Compression = Literal["gz", "xz"]
T = TypeVar("T", bound=str)


def closure_order(rrefs: Iterable[T], deps: Callable[[T], Iterable[T]]) -> list[T]:
    """The nodes ``rrefs`` and everything ``deps`` reaches from them, dependencies first.

    Args:
        rrefs: the targets.
        deps: a function giving what a realization was built from (its direct deps).

    >>> g = {"c": ["b"], "b": ["a"], "a": []}
    >>> closure_order(["c"], g.__getitem__)
    ['a', 'b', 'c']
    """
    done: set[T] = set()
    out: list[T] = []
    for t in sorted(set(rrefs)):
        if t in done:
            continue
        # Iterative post-order: a closure may be a chain of thousands.
        stack: list[tuple[T, list[T]]] = [(t, sorted(deps(t)))]
        done.add(t)
        while stack:
            node, pending = stack[-1]
            if pending:
                d = pending.pop()
                if d not in done:
                    done.add(d)
                    stack.append((d, sorted(deps(d))))
            else:
                stack.pop()
                out.append(node)
    return out


def _direct_deps(S: StorageSettings, r: RRef) -> list[RRef]:
    return [x for v in rrefctx(r, S).values() for x in v]


def _check_targets(rrefs: Iterable[RRef], S: StorageSettings) -> list[RRef]:
    out = [RRef(r) for r in rrefs]
    for r in out:
        rref2path(r, S)  # raises RefError naming a malformed or missing rref
    # Kept alive (with their closures) while this process reads them.
    for gone in add_temproots(S, out, check=True):
        rref2path(RRef(gone), S)  # collected meanwhile: the same RefError
    if not out:
        raise RefError("no RRefs given: name at least one realization to export or copy", ref="")
    return out


def _plan(targets: list[RRef], S: StorageSettings) -> tuple[list[RRef], list[DRef]]:
    order = closure_order(targets, functools.partial(_direct_deps, S))
    for r in order:
        rref2path(r, S)  # a dependency removed by rmref makes the closure incomplete
    drefs = {rref2dref(r) for r in order}
    return order, sorted(drefs | drefdeps(drefs, S))


def _manifest(targets: list[RRef], order: list[RRef], drefs: list[DRef]) -> bytes:
    m = {"format": ARCHIVE_FORMAT, "targets": targets, "rrefs": order, "drefs": drefs}
    return json.dumps(m, indent=1, sort_keys=True).encode()


def _normalize(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owners and times are not part of an object's identity; leaving them out
    # makes archives of the same closure byte-identical.
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = 0
    return ti


def _add_tree(tf: tarfile.TarFile, path: str, arcname: str) -> None:
    tf.add(path, arcname, recursive=False, filter=_normalize)
    if os.path.isdir(path) and not os.path.islink(path):
        for n in sorted(os.listdir(path)):
            _add_tree(tf, os.path.join(path, n), f"{arcname}/{n}")


def closure_plan(
    rrefs: Iterable[RRef], S: StorageSettings
) -> tuple[list[RRef], list[RRef], list[DRef]]:
    """The targets, the closure (dependencies first) and every DRef its configs name.

    Raises:
        RefError: no RRefs, an RRef is malformed or not in the store, or a
            dependency of it was removed (the closure is incomplete).
    """
    targets = _check_targets(rrefs, S)
    order, drefs = _plan(targets, S)
    return targets, order, drefs


def write_realization_archive(
    rref: RRef, S: StorageSettings, out: io.RawIOBase | Any, *, compresslevel: int | None
) -> None:
    """Write one realization folder as a deterministic tar stream to ``out``.

    The members are ``<rhash>/...`` (artifacts and reserved files), with
    owners and times cleared and entries in sorted order, so one stored
    realization always gives the same bytes. ``compresslevel`` ``None``
    writes a plain tar, else gzip at that level (with no name or time in its
    header). ``out`` needs only ``write``: the archive is streamed, never
    held in memory.
    """
    rhash, _, _ = parse_rref(rref)
    gz = (
        None
        if compresslevel is None
        else gzip.GzipFile(
            filename="", mode="wb", compresslevel=compresslevel, fileobj=out, mtime=0
        )
    )
    try:
        with tarfile.open(fileobj=gz or out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            _add_tree(tf, rref2path_(rref, S), rhash)
    finally:
        if gz is not None:
            gz.close()


def insert_staged_closure(
    stage: str, S: StorageSettings, source: str, targets: list[RRef]
) -> list[RRef]:
    """Check the closure laid out in ``stage`` (as an extracted export) and insert it.

    ``stage`` holds ``pylightnix-closure.json`` (see :func:`staged_manifest`),
    ``<dhash>-<name>/config.json`` and ``<dhash>-<name>/<rhash>/`` folders.
    Nothing becomes visible unless everything checks out (see the module docs).
    """
    return _insert_staged(stage, S, source, targets=targets)


def staged_manifest(targets: list[RRef], rrefs: list[RRef], drefs: list[DRef]) -> bytes:
    """The manifest of a staged closure holding ``rrefs`` and the configs of ``drefs``."""
    return _manifest(targets, rrefs, drefs)


def export_closure(
    rrefs: Iterable[RRef],
    archive_path: str,
    S: StorageSettings | None = None,
    *,
    compression: Compression | None = None,
) -> Path:
    """Write the closure of ``rrefs`` (and nothing else) into one tar archive.

    Args:
        rrefs: the realizations to export; their dependencies come along.
        archive_path: the file to write (replaced atomically if it exists).
        S: the store (default: the current one).
        compression: ``None`` (plain tar), ``"gz"`` or ``"xz"``.

    Returns:
        the archive path.

    Raises:
        RefError: an RRef is malformed or not in the store, or a dependency of
            it was removed (the closure is incomplete).
        StoreError: ``archive_path`` is a folder or its folder does not exist.
        OptionError: unknown ``compression``.
    """
    if compression not in (None, "gz", "xz"):
        raise OptionError(
            f"compression={compression!r}: expected None, 'gz' or 'xz'",
            option="compression",
            value=compression,
        )
    s = fsS(S)
    check_store(s)
    dst = os.path.abspath(archive_path)
    if not os.path.isdir(os.path.dirname(dst)) or os.path.isdir(dst):
        raise StoreError(
            f"cannot write the archive {archive_path!r}: "
            + ("it is a folder" if os.path.isdir(dst) else "its folder does not exist")
            + " (name a file in an existing folder)",
            path=archive_path,
        )
    tmp = os.path.join(os.path.dirname(dst), f".tmp-{unique_suffix()}-{os.path.basename(dst)}")
    targets = _check_targets(rrefs, s)
    order, drefs = _plan(targets, s)
    mode: Any = f"w:{compression}" if compression else "w"
    try:
        with tarfile.open(tmp, mode, format=tarfile.PAX_FORMAT) as tf:
            data = _manifest(targets, order, drefs)
            ti = _normalize(tarfile.TarInfo(MANIFEST))
            ti.size = len(data)
            ti.mode = 0o444
            tf.addfile(ti, io.BytesIO(data))
            for d in drefs:
                tf.add(
                    os.path.join(s.storage, dref_dirname(d), CONFIG_FILE),
                    f"{dref_dirname(d)}/{CONFIG_FILE}",
                    filter=_normalize,
                )
            for r in order:
                rhash, _, _ = parse_rref(r)
                _add_tree(tf, rref2path_(r, s), f"{dref_dirname(rref2dref(r))}/{rhash}")
        os.replace(tmp, dst)
    except BaseException:
        remove_tree(tmp)
        raise
    return Path(dst)


def import_closure(archive_path: str, S: StorageSettings | None = None) -> list[RRef]:
    """Import a closure exported by :func:`export_closure`; return its target RRefs.

    Nothing becomes visible unless the whole archive checks out (see the
    module docs). Realizations already in the store are kept as they are.
    Imported objects are not GC roots: register a result link or keep them.

    Raises:
        ArchiveError: the archive is missing, truncated, corrupt, not a
            pylightnix closure, or incomplete.
        UnsafeArchiveError: a member would escape the extraction folder, is a
            link out of it or a device.
        IntegrityError: a config or realization does not match its hash.
    """
    from pylightnix.unpack import safe_extract

    s = fsS(S)
    check_store(s)
    src = os.path.abspath(archive_path)
    stage = mkdtemp_in(s.tmpdir, "import")
    try:
        safe_extract(src, stage, kind="tar")
        return _insert_staged(stage, s, src)
    finally:
        remove_tree(stage)


def copyclosure(
    rrefs: Iterable[RRef], src_S: StorageSettings, dst_S: StorageSettings | None = None
) -> list[RRef]:
    """Copy the closure of ``rrefs`` from one store into another (default: the
    default store); return ``rrefs``.

    Every copied object is checked against its hash in the destination before
    it becomes visible, as on import; objects already there are skipped.

    Raises:
        RefError: an RRef is malformed or not in ``src_S`` (or its closure is incomplete).
        IntegrityError: a source object does not match its hash (a damaged source store).
    """
    dst_S = fsS(dst_S)
    check_store(src_S)
    check_store(dst_S)
    if os.path.realpath(src_S.storage) == os.path.realpath(dst_S.storage):
        return _check_targets(rrefs, src_S)
    # The targets become temporary roots of this process in the source (so a
    # collection there keeps their closure while it is read), and every
    # object inserted into the destination does too (store/insert.py). No
    # store-wide lock is held, so copies in opposite directions never wait.
    targets = _check_targets(rrefs, src_S)
    order, drefs = _plan(targets, src_S)
    stage = mkdtemp_in(dst_S.tmpdir, "copy")
    try:
        _stage_copy(stage, src_S, dst_S, targets, order, drefs)
        return _insert_staged(stage, dst_S, f"store {src_S.storage!r}", targets=targets)
    finally:
        remove_tree(stage)


def _stage_copy(
    stage: str,
    src_S: StorageSettings,
    dst_S: StorageSettings,
    targets: list[RRef],
    order: list[RRef],
    drefs: list[DRef],
) -> None:
    """Lay out a closure of ``src_S`` in ``stage`` as an archive would hold it."""
    for d in drefs:
        os.makedirs(os.path.join(stage, dref_dirname(d)), exist_ok=True)
        shutil.copyfile(
            os.path.join(src_S.storage, dref_dirname(d), CONFIG_FILE),
            os.path.join(stage, dref_dirname(d), CONFIG_FILE),
        )
    missing = [r for r in order if not os.path.isdir(rref2path_(r, dst_S))]
    for r in missing:
        shutil.copytree(
            rref2path_(r, src_S),
            os.path.join(stage, dref_dirname(rref2dref(r)), parse_rref(r)[0]),
            symlinks=True,
        )
    with open(os.path.join(stage, MANIFEST), "wb") as f:
        f.write(_manifest(targets, missing, drefs))


def store_checked_realization(
    S: StorageSettings, rref: RRef, context: Context, folder: str
) -> bool:
    """Move a complete realization folder, already checked against ``rref``, into place.

    ``folder`` holds the artifacts and the reserved files (as an exported or
    copied realization does) and has been verified to hash to ``rref`` with
    ``context``; the derivation must already be stored. Used by import and
    copy between stores. Returns whether it moved; if the realization is
    already stored, ``folder`` is removed instead.
    """
    rhash, _, _ = parse_rref(rref)
    dref = rref2dref(rref)
    # Hard links of a tar archive join files of the staged closure: each gets its own.
    unshare_hardlinks(folder)
    make_readonly(folder, durable=S.durable, skip_top=True)
    # The top folder must be writable to move it into another parent.
    os.chmod(folder, 0o755)
    failed = os.path.isfile(os.path.join(folder, RESERVED, FAILURE_FILE))
    return place_realization(S, dref, context_hash(context), rhash, folder, failed=failed)


def _bad(source: str, why: str) -> ArchiveError:
    return ArchiveError(
        f"{source}: {why}; nothing was imported (export it again with export_closure)",
        archive=source,
    )


def _read_manifest(stage: str, source: str) -> tuple[list[RRef], list[RRef], list[DRef]]:
    try:
        with open(os.path.join(stage, MANIFEST), "rb") as f:
            m = json.loads(f.read())
    except FileNotFoundError:
        raise _bad(source, f"has no {MANIFEST}: it is not a pylightnix closure archive") from None
    except (OSError, ValueError) as e:
        raise _bad(source, f"has an unreadable {MANIFEST} ({e})") from None
    if not isinstance(m, dict) or m.get("format") != ARCHIVE_FORMAT:
        fmt = m.get("format") if isinstance(m, dict) else None
        raise _bad(source, f"has format {fmt!r}, expected {ARCHIVE_FORMAT!r}")
    lists: list[list[str]] = []
    for key, ok in (("targets", maybe_parse_rref), ("rrefs", maybe_parse_rref)):
        v = m.get(key)
        if not isinstance(v, list) or any(ok(x) is None for x in v):
            raise _bad(source, f"has a malformed {key!r} list in its manifest")
        lists.append(v)
    drefs = m.get("drefs")
    if not isinstance(drefs, list) or any(maybe_parse_dref(x) is None for x in drefs):
        raise _bad(source, "has a malformed 'drefs' list in its manifest")
    return [RRef(x) for x in lists[0]], [RRef(x) for x in lists[1]], [DRef(x) for x in drefs]


def _check_layout(stage: str, rrefs: list[RRef], drefs: list[DRef], source: str) -> None:
    """The extracted tree holds exactly what the manifest lists, nothing more."""
    want: dict[str, set[str]] = {dref_dirname(d): {CONFIG_FILE} for d in drefs}
    for r in rrefs:
        want.setdefault(dref_dirname(rref2dref(r)), set()).add(parse_rref(r)[0])
    for n in sorted(os.listdir(stage)):
        if n == MANIFEST:
            continue
        if n not in want or not os.path.isdir(os.path.join(stage, n)):
            raise _bad(source, f"holds {n!r}, which its manifest does not list")
        have = set(os.listdir(os.path.join(stage, n)))
        extra = sorted(have - want[n])
        if extra:
            raise _bad(source, f"holds {n}/{extra[0]}, which its manifest does not list")
    for n, names in sorted(want.items()):
        for x in sorted(names):
            p = os.path.join(stage, n, x)
            ok = os.path.isfile(p) if x == CONFIG_FILE else os.path.isdir(p)
            if not ok or os.path.islink(p):
                raise _bad(source, f"lacks {n}/{x}, which its manifest lists (truncated?)")


def _load_configs(stage: str, drefs: list[DRef], source: str) -> dict[DRef, Config]:
    out: dict[DRef, Config] = {}
    for d in drefs:
        p = os.path.join(stage, dref_dirname(d), CONFIG_FILE)
        try:
            with open(p, "rb") as f:
                cfg = mkconfig(json.loads(f.read()))
        except (OSError, ValueError) as e:
            raise _bad(source, f"holds an unreadable config of {d} ({e})") from None
        dhash, name = parse_dref(d)
        if config_hash(cfg) != dhash or config_name(cfg) != name:
            raise IntegrityError(
                f"{source}: the config of {d} does not hash to it (corrupted or forged); "
                "nothing was imported",
                ref=d,
                expected=dhash,
                actual=config_hash(cfg),
            )
        out[d] = cfg
    return out


def _insert_staged(
    stage: str, S: StorageSettings, source: str, *, targets: list[RRef] | None = None
) -> list[RRef]:
    """Check a staged closure completely, then insert it, dependencies first."""
    m_targets, rrefs, drefs = _read_manifest(stage, source)
    _check_layout(stage, rrefs, drefs, source)
    configs = _load_configs(stage, drefs, source)
    contexts: dict[RRef, Context] = {}
    listed = set(rrefs)
    for r in rrefs:
        d = rref2dref(r)
        if d not in configs and not dref_exists(d, S):
            raise _bad(source, f"lacks the config of {d}, the derivation of {r}")
        path = os.path.join(stage, dref_dirname(d), parse_rref(r)[0])
        why = content_problem(path, r)
        if why is not None:
            raise IntegrityError(
                f"{source}: realization {r} does not match its RRef: {why}; nothing was imported",
                ref=r,
            )
        ctx = read_context_file(os.path.join(path, RESERVED, CONTEXT_FILE))
        for k, v in ctx.items():
            for x in v:
                if rref2dref(x) != k:
                    raise _bad(source, f"gives {r} a context entry {x} under {k}")
                if x not in listed and not os.path.isdir(rref2path_(x, S)):
                    raise _bad(source, f"lacks {x}, a dependency of {r} (incomplete closure)")
        contexts[r] = ctx
    for t in m_targets:
        if t not in listed and not os.path.isdir(rref2path_(t, S)):
            raise _bad(source, f"lists the target {t} but does not hold it")

    # What the closure holds stays alive for this process from here on,
    # already stored objects included (a collection must not take them
    # while the rest is inserted).
    add_temproots(S, [*drefs, *rrefs])
    for d in drefs:
        store_derivation(S, d, configs[d])
    deps = {r: [x for v in c.values() for x in v if x in listed] for r, c in contexts.items()}
    for r in closure_order(rrefs, deps.__getitem__):
        if os.path.isdir(rref2path_(r, S)):
            continue
        d = rref2dref(r)
        store_checked_realization(
            S, r, contexts[r], os.path.join(stage, dref_dirname(d), parse_rref(r)[0])
        )
    return list(m_targets if targets is None else targets)

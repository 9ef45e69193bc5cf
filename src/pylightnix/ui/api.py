"""The JSON records of the web view's API (``/api/...``): library records, paginated.

Every listing is paginated (``offset``, ``limit``) and reads per object only
what the page it returns shows: the stage list takes names from one listing of
the storage folder and counts realizations for the listed stages only.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from dataclasses import asdict
from typing import Any

from pylightnix.config import config_dict
from pylightnix.errors import RequestError
from pylightnix.realize.buildlog import TMP_LOG_NAME, rreflog_path
from pylightnix.realize.failures import failed_rhashes, rref_failure
from pylightnix.refs import (
    HASH_LEN,
    dref_name,
    is_dref,
    is_hashpart,
    is_name,
    is_rref,
    maybe_parse_dref_dirname,
    mkrref,
    parse_dref,
    rref2dref,
)
from pylightnix.store.index import index_path
from pylightnix.store.inspect import du, files_diff, refdiff, rref_files
from pylightnix.store.layout import CONFIG_FILE, dref2path
from pylightnix.store.query import (
    dref2path_checked,
    drefcfg_,
    drefdeps1,
    rref2path,
    rrefctx,
    rrefmeta,
)
from pylightnix.store.roots import list_roots
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef
from pylightnix.ui.files import PREVIEW_BYTES, preview, resolve_inside, utf8_prefix
from pylightnix.ui.graph import COLOURS, ref_graph, render_svg, to_dot

MAX_LIMIT = 1000
"""The most items one page of a listing returns."""

LOG_CHUNK = 256 * 1024
"""The most bytes of a log one request returns (the page asks again from the next offset)."""

SIZE_TOP = 100
"""How many of the largest derivations the size record lists."""

_BUILD_DIR = re.compile(r"build-([A-Za-z0-9_-]+)-(\d+)-[A-Za-z0-9_]{8}\Z")


def page(items: list[Any], offset: int, limit: int) -> list[Any]:
    """The items of one page.

    >>> page(list(range(10)), 8, 5)
    [8, 9]
    """
    return items[offset : offset + limit]


def stage_index(S: StorageSettings) -> list[str]:
    """Derivation folder names of the store, sorted by stage name, then hash.

    One listing of the storage folder, no folder read (a page checks its own).
    """
    names = [n for n in os.listdir(S.storage) if n[HASH_LEN : HASH_LEN + 1] == "-"]
    names.sort(key=lambda n: (n[HASH_LEN + 1 :], n))
    return names


def stages(
    S: StorageSettings,
    *,
    q: str = "",
    offset: int = 0,
    limit: int = 100,
    index: list[str] | None = None,
) -> dict[str, Any]:
    """Derivations of the store by name (``q``: a substring of the name), with realization counts.

    Args:
        S: the store.
        q: keep the stages whose name holds this.
        offset, limit: the page.
        index: :func:`stage_index` of ``S`` if the caller keeps one (else listed now).
    """
    idx = stage_index(S) if index is None else index
    hits = [n for n in idx if q in n[HASH_LEN + 1 :]] if q else idx
    items = []
    for n in page(hits, offset, limit):
        d = maybe_parse_dref_dirname(n)
        p = os.path.join(S.storage, n)
        if d is None or not os.path.isfile(os.path.join(p, CONFIG_FILE)):
            continue  # not a derivation, or one being removed or written just now
        count = sum(1 for x in os.listdir(p) if is_hashpart(x))
        items.append({"dref": d, "name": n[HASH_LEN + 1 :], "realizations": count})
    return {"total": len(hits), "offset": offset, "limit": limit, "items": items}


def settled_mtime(path: str) -> int | None:
    """The modification time (ns) of a folder, or ``None`` if it is missing or changed within
    the last two seconds (another change in the same tick of the file system's clock would
    keep the same time, so it cannot yet tell whether the folder changed)."""
    try:
        m = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
    return None if time.time_ns() - m < 2_000_000_000 else m


def drefs_named(name: str, S: StorageSettings) -> list[DRef]:
    """The stored derivations called ``name``, found by folder name, sorted."""
    out = []
    for n in os.listdir(S.storage):
        if n.endswith(f"-{name}") and len(n) == HASH_LEN + 1 + len(name):
            d = maybe_parse_dref_dirname(n)
            if d is not None and os.path.isfile(os.path.join(S.storage, n, CONFIG_FILE)):
                out.append(d)
    return sorted(out)


def dref_record(
    dref: DRef, S: StorageSettings, *, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """A derivation: config, direct dependencies and a page of its realizations."""
    p = dref2path_checked(dref, S)
    # Realization folders are renamed in complete: their names list them, unread.
    rhashes = sorted(n for n in os.listdir(p) if is_hashpart(n))
    bad = failed_rhashes(dref, S)
    dhash, name = parse_dref(dref)
    items = []
    for h in page(rhashes, offset, limit):
        r = mkrref(h, dhash, name)
        items.append(
            {"rref": r, "build_start": rrefmeta(r, S).get("build_start"), "failed": h in bad}
        )
    return {
        "dref": dref,
        "name": str(dref_name(dref)),
        "config": config_dict(drefcfg_(dref, S)),
        "deps": sorted(drefdeps1([dref], S)),
        "total": len(rhashes),
        "failed": len(bad),
        "offset": offset,
        "limit": limit,
        "realizations": items,
    }


def rref_record(rref: RRef, S: StorageSettings) -> dict[str, Any]:
    """A realization: config, context, build times, failure (if failed) and whether a log exists."""
    rref2path(rref, S)
    d = rref2dref(rref)
    meta = rrefmeta(rref, S)
    f = rref_failure(rref, S)
    return {
        "rref": rref,
        "dref": d,
        "name": str(dref_name(d)),
        "config": config_dict(drefcfg_(d, S)),
        "context": dict(sorted(rrefctx(rref, S).items())),
        "build_start": meta.get("build_start"),
        "build_stop": meta.get("build_stop"),
        "host": meta.get("host"),
        "failure": None if f is None else asdict(f),
        "has_log": os.path.exists(rreflog_path(rref, S)),
    }


def files_record(
    rref: RRef, S: StorageSettings, *, offset: int = 0, limit: int = 1000
) -> dict[str, Any]:
    """A page of the files and symlinks of a realization, in path order."""
    fs = rref_files(rref, S)
    return {
        "rref": rref,
        "total": len(fs),
        "offset": offset,
        "limit": limit,
        "items": [asdict(x) for x in page(fs, offset, limit)],
    }


def file_path(rref: RRef, path: str, S: StorageSettings) -> str:
    """The real path of a file of a realization, checked to lie inside it (see ``files.py``)."""
    return resolve_inside(rref2path(rref, S), path)


def preview_record(rref: RRef, path: str, S: StorageSettings) -> dict[str, Any]:
    """A preview of one file of a realization: text shown, images shown, others downloaded."""
    p = preview(file_path(rref, path, S))
    return {"rref": rref, "path": path, "limit": PREVIEW_BYTES, **asdict(p)}


def log_chunk(path: str, offset: int) -> dict[str, Any]:
    """The bytes of a log file from ``offset`` (at most :data:`LOG_CHUNK`, cut at a character).

    Returns:
        ``text``, ``next`` (the offset to ask from next time) and ``size`` (of
        the file now); a missing file reads as empty.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(LOG_CHUNK)
    except FileNotFoundError:
        return {"text": "", "next": offset, "size": 0, "exists": False}
    cut = utf8_prefix(data)
    if cut == 0 and data:
        cut = len(data)  # not UTF-8 at all: let the decoder replace it
    return {
        "text": data[:cut].decode("utf-8", "replace"),
        "next": offset + cut,
        "size": size,
        "exists": True,
    }


def rref_log(rref: RRef, S: StorageSettings, offset: int) -> dict[str, Any]:
    """The build log of a stored realization from ``offset`` (complete: it no longer grows)."""
    return {**log_chunk(rreflog_path(rref, S), offset), "running": False}


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def building(S: StorageSettings) -> dict[str, Any]:
    """Builds running now: their private folders in the store's temporary space."""
    try:
        names = sorted(os.listdir(S.tmpdir))
    except FileNotFoundError:
        names = []
    items = []
    for n in names:
        m = _BUILD_DIR.match(n)
        if m is None or not _owner_alive(int(m.group(2))):
            continue
        log = os.path.join(S.tmpdir, n, TMP_LOG_NAME)
        try:
            st = os.stat(log)
        except FileNotFoundError:
            continue
        started = os.stat(os.path.join(S.tmpdir, n)).st_mtime
        items.append(
            {
                "id": n,
                "name": m.group(1),
                "pid": int(m.group(2)),
                "started": started,
                "log_size": st.st_size,
            }
        )
    return {"items": items}


def building_log(build_id: str, S: StorageSettings, offset: int) -> dict[str, Any]:
    """The log of a running build from ``offset``; ``running`` turns false once it ended."""
    m = _BUILD_DIR.match(build_id)
    if m is None:
        raise RequestError(
            f"{build_id!r} is not a running build's id (see /api/building for them)", status=400
        )
    folder = os.path.join(S.tmpdir, build_id)
    running = os.path.isdir(folder) and _owner_alive(int(m.group(2)))
    return {**log_chunk(os.path.join(folder, TMP_LOG_NAME), offset), "running": running}


def _keypath(k: tuple[str, ...]) -> str:
    return ".".join(k)


def diff_record(a: RRef, b: RRef, S: StorageSettings) -> dict[str, Any]:
    """How two realizations differ: their configs key by key, and their files."""
    rref2path(a, S)
    rref2path(b, S)
    c = refdiff(a, b, S)
    f = files_diff(a, b, S)
    return {
        "a": a,
        "b": b,
        "config": {
            "added": [{"key": _keypath(k), "value": v} for k, v in sorted(c.added.items())],
            "removed": [{"key": _keypath(k), "value": v} for k, v in sorted(c.removed.items())],
            "changed": [
                {"key": _keypath(k), "old": x, "new": y} for k, (x, y) in sorted(c.changed.items())
            ],
        },
        "context_same": rrefctx(a, S) == rrefctx(b, S),
        "files": asdict(f),
    }


def size_record(S: StorageSettings) -> dict[str, Any]:
    """Disk usage of the store: the total and the largest derivations (linear in its files)."""
    t0 = time.time()
    u = du(S)
    top = sorted(u.drefs.items(), key=lambda kv: (-kv[1], kv[0]))[:SIZE_TOP]
    return {
        "total": u.total,
        "derivations": len(u.drefs),
        "realizations": len(u.rrefs),
        "largest": [{"dref": d, "name": str(dref_name(d)), "bytes": n} for d, n in top],
        "computed_at": t0,
        "seconds": time.time() - t0,
    }


def roots_record(S: StorageSettings) -> dict[str, Any]:
    """The registered GC roots: each result link and the realization it keeps alive."""
    return {
        "items": [
            {"entry": r.entry, "link": r.link, "rref": r.rref, "stale": r.rref is None}
            for r in list_roots(S)
        ]
    }


def graph_record(ref: DRef | RRef, S: StorageSettings) -> dict[str, Any]:
    """The dependency graph of a ref: nodes with status, edges, and the SVG ``dot`` drew."""
    if is_rref(ref):
        rref2path(RRef(ref), S)
    else:
        dref2path_checked(DRef(ref), S)
    g = ref_graph(ref, S)
    return {
        "root": ref,
        "nodes": [asdict(n) for n in g.nodes],
        "edges": [list(e) for e in g.edges],
        "cut": g.cut,
        "colours": COLOURS,
        "svg": render_svg(to_dot(g)),
    }


def runs_key(what: str, S: StorageSettings) -> tuple[tuple[DRef, int, int, int], ...] | None:
    """What the runs of ``what`` depend on: each derivation folder's modification time
    and its index file's inode and length.

    A new realization and a removed one change their derivation folder; a new
    chosen record or score (written by realize) grows the index, and a
    compaction replaces it: so an equal key means equal runs. ``None`` (do not
    reuse) while a folder's time is not settled (:func:`settled_mtime`).
    """
    if not (is_dref(what) or is_name(what)):
        return None
    drefs = [DRef(what)] if is_dref(what) else drefs_named(what, S)
    key = []
    for d in drefs:
        m = settled_mtime(dref2path(d, S))
        if m is None:
            return None
        try:
            st = os.stat(index_path(S, d))
            ix = (st.st_ino, st.st_size)
        except FileNotFoundError:
            ix = (0, 0)
        key.append((d, m, *ix))
    return tuple(key)


def runs_record(what: str, S: StorageSettings) -> dict[str, Any]:
    """The runs of a stage (by name or DRef): parameters, metrics and the matcher's choice.

    Raises:
        RequestError: ``what`` is neither a stage name nor a DRef (400), or
            this pylightnix has no runs API (501).
    """
    if not (is_dref(what) or is_name(what)):
        raise RequestError(f"{what!r} is neither a stage name nor a DRef (dref:...)", status=400)
    try:
        # Imported by name: the runs API comes with the "experiments" work and may be missing.
        runs = importlib.import_module("pylightnix.runs").runs
    except ImportError as e:
        if e.name not in ("pylightnix.runs", None):
            raise
        raise RequestError(
            "this pylightnix has no runs API (pylightnix.runs): upgrade pylightnix", status=501
        ) from None
    if is_dref(what):
        rs = runs(DRef(what), S=S)
    else:
        # By name: find the derivations from folder names (no config read for other stages),
        # then order the runs as runs() does, oldest build first.
        rs = [r for d in drefs_named(what, S) for r in runs(d, S=S)]
        rs.sort(key=lambda r: (r.build_start is None, r.build_start or 0.0, r.rref))
    items = [r.to_json() for r in rs]
    return {
        "what": what,
        "params": sorted({k for r in rs for k in r.params}),
        "metrics": sorted({k for r in rs for k in r.metrics}),
        "runs": items,
    }

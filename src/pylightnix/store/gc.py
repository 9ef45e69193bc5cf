"""Garbage collection: delete what no root keeps alive (semantics in ``docs/gc.md``).

Roots are the registered result links (``.roots``), the caller's
``keep_rrefs`` and ``keep_drefs``, the policies (``keep_last``,
``older_than``) and the temporary roots of every live process
(``temproots.py``: what running instantiates and realizes use and create).

* live realizations = root realizations + everything they were built from
  (transitively, through their stored contexts);
* live derivations = root derivations + the derivations of live
  realizations + everything their configs depend on (transitively).

The collector never stops the world. It reads the store's graph with no
lock held (one pass: :func:`scan_graph`), computes reachability once
(:func:`compute_live`), then deletes in bounded batches: each batch holds the
GC lock exclusively, first reads what processes registered since the last
batch (and keeps it, with its closure), then renames at most
:data:`BATCH_MAX` objects (or :data:`BATCH_SECONDS` worth) into a trash
folder. The trash is emptied with no lock held. Objects inserted after the
scan are never candidates; objects found after the scan are registered by
their finder under the lock held shared and checked to still exist.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pylightnix.config import _scan
from pylightnix.errors import OptionError, StoreError
from pylightnix.refs import (
    dref_dirname,
    is_dref,
    is_hashpart,
    is_rref,
    maybe_parse_dref_dirname,
    mkrref,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.fsops import mkdtemp_in, remove_tree_counting, tree_bytes
from pylightnix.store.layout import (
    CONFIG_FILE,
    CONTEXT_FILE,
    INDEX_DIR,
    LOCKS_DIR,
    RESERVED,
    ROOTS_DIR,
    check_store,
    dref2path,
    rref2path_,
)
from pylightnix.store.locks import gc_collector, gc_exclusive, store_writable
from pylightnix.store.roots import list_roots
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.temproots import TempRootsReader
from pylightnix.types import DRef, Path, RRef

T = TypeVar("T")
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

BATCH_MAX = 64
"""At most this many objects leave the store per exclusive section of the GC lock."""
BATCH_SECONDS = 0.002
"""An exclusive section stops taking new objects after this long (a rename is ~10 us)."""
BATCH_PAUSE = 0.002
"""Pause between two exclusive sections. ``flock`` does not hand a released lock to
its waiters: without a pause the collector takes it again before a woken realize
runs, and that realize would wait for several batches."""


@dataclass(frozen=True)
class GCRoot:
    """One reason something was kept alive.

    Attributes:
        ref: the DRef or RRef kept.
        why: ``"link <path>"`` (a registered result link), ``"keep_rrefs"``,
            ``"keep_drefs"``, ``"keep_last <n>"``, ``"older_than <seconds>"``
            (newer than that) or ``"temproot"`` (a live process uses it).
    """

    ref: str
    why: str


@dataclass(frozen=True)
class GCResult:
    """What a collection deleted (or, in a dry run, would delete).

    Attributes:
        deleted_drefs: derivations removed whole (config, index, realizations), sorted.
        deleted_rrefs: realizations removed, sorted.
        bytes_freed: bytes of the files and symlinks removed, measured as
            :func:`~pylightnix.store.inspect.du` measures (the sum of ``sizes``
            and of the leftovers).
        roots: the roots that kept things alive, and why.
        stale_roots: root entries whose link is gone or points outside the store.
        tmp_removed: leftovers removed from the temporary space and the store
            (temporary folders and files of processes that no longer run,
            trash, dangling index markers, lock files of removed derivations,
            temporary-root records of dead processes).
        dry_run: whether this was only a report.
        sizes: the bytes of each deleted realization, and of each deleted
            derivation folder without its realizations (its config), by ref.
    """

    deleted_drefs: tuple[DRef, ...] = ()
    deleted_rrefs: tuple[RRef, ...] = ()
    bytes_freed: int = 0
    roots: tuple[GCRoot, ...] = ()
    stale_roots: tuple[Path, ...] = ()
    tmp_removed: tuple[Path, ...] = field(default=())
    dry_run: bool = False
    sizes: Mapping[str, int] = field(default_factory=dict)


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
class _Graph:
    rref_deps: dict[RRef, list[RRef]] = field(default_factory=dict)
    dref_deps: dict[DRef, list[DRef]] = field(default_factory=dict)
    drv_rrefs: dict[DRef, list[RRef]] = field(default_factory=dict)
    ctime: dict[str, float] = field(default_factory=dict)  # ref -> when it was stored
    unsealed: list[str] = field(default_factory=list)  # realization tops left writable
    unreadable: list[str] = field(default_factory=list)  # refs whose deps are unknown
    # Filled by scan_graph(markers=True): index markers by realization hash,
    # per derivation, and leftovers of crashed writes in derivation folders.
    markers: dict[DRef, dict[str, list[str]]] = field(default_factory=dict)
    drv_tmp: list[str] = field(default_factory=list)


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


def _read_context(path: str) -> list[RRef] | None:
    """The RRefs of a stored context file, or ``None`` if it is unreadable."""
    try:
        raw = _read_json(path)
    except (OSError, ValueError):
        return None
    if type(raw) is not dict:
        return None
    out: list[RRef] = []
    for v in raw.values():
        if type(v) is not list or not all(is_rref(x) for x in v):
            return None
        out.extend(v)
    return out


def _read_config_deps(path: str) -> list[DRef] | None:
    """The DRefs a stored config mentions, or ``None`` if it is missing or unreadable."""
    try:
        raw = _read_json(path)
    except (OSError, ValueError):
        return None
    if type(raw) is not dict:
        return None
    deps: set[str] = set()
    # The walk of config_deps, without validating the whole config again.
    _scan(raw, deps)
    return [DRef(d) for d in deps]


def _listdir(path: str, what: str) -> list[str]:
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


def scan_graph(S: StorageSettings, *, markers: bool = False) -> _Graph:
    """Read the whole dependency graph of a store: one pass over its folders.

    Per derivation: one folder listing and one read of its config; per
    realization: one read of its context and one ``lstat``. ``markers`` also
    lists the index (needed to delete and to find dangling markers, not to
    compute what is live).
    """
    g = _Graph()
    for n in _listdir(S.storage, "its derivations"):
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
            elif markers and h.startswith(INDEX_DIR):
                g.markers.setdefault(dref, {})
                _scan_index(os.path.join(ddir, h), g.markers[dref])
            elif markers and h.startswith(".tmp-"):
                g.drv_tmp.append(os.path.join(ddir, h))
        g.drv_rrefs[dref] = sorted(rs)
    return g


def _scan_index(idx: str, out: dict[str, list[str]]) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for ch in os.listdir(idx):
            cdir = os.path.join(idx, ch)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for m in os.listdir(cdir):
                    out.setdefault(m, []).append(os.path.join(cdir, m))


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


def _tmp_leftovers(S: StorageSettings, g: _Graph, own_trash: str | None) -> list[str]:
    """Temporary entries of dead processes: temp space, derivation folders, roots, storage."""
    out = [
        os.path.join(S.tmpdir, n)
        for n in _listdir(S.tmpdir, "its temporary space")
        if not _owner_alive(n) and os.path.join(S.tmpdir, n) != own_trash
    ]
    out.extend(p for p in g.drv_tmp if not _owner_alive(os.path.basename(p)))
    rdir = os.path.join(S.storage, ROOTS_DIR)
    out.extend(
        os.path.join(rdir, n)
        for n in _listdir(rdir, "GC roots")
        if ".tmp-" in n and not _owner_alive(n)
    )
    out.extend(
        os.path.join(S.storage, n)
        for n in _listdir(S.storage, "its derivations")
        if n.startswith(".tmp-") and not _owner_alive(n)
    )
    return sorted(out)


def _dead_lockfiles(S: StorageSettings, live_dirs: set[str]) -> list[str]:
    d = os.path.join(S.storage, LOCKS_DIR)
    return [
        os.path.join(d, n)
        for n in sorted(_listdir(d, "its lock files"))
        # Only build locks (named after a derivation folder): other lock files
        # may belong to code that takes them outside the GC lock.
        if n.endswith(".lock")
        and maybe_parse_dref_dirname(n[: -len(".lock")]) is not None
        and n[: -len(".lock")] not in live_dirs
    ]


def _orphan_locks(g: _Graph, locks: list[str]) -> list[str]:
    """The lock files whose derivation was already gone: leftovers (the others go with
    their derivation and are not reported apart)."""
    stored = {dref_dirname(d) for d in g.drv_rrefs}
    return [p for p in locks if os.path.basename(p)[: -len(".lock")] not in stored]


def _unlink_lockfile(path: str) -> bool:
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


def _keep_lists(
    keep_drefs: Iterable[DRef], keep_rrefs: Iterable[RRef]
) -> tuple[list[DRef], list[RRef]]:
    """The keep-lists as lists, each ref validated (a RefError names a malformed one)."""
    kd = [DRef(d) for d in keep_drefs]
    kr = [RRef(r) for r in keep_rrefs]
    for d in kd:
        parse_dref(d)
    for r in kr:
        parse_rref(r)
    return kd, kr


def gc(
    S: StorageSettings | None = None,
    *,
    keep_drefs: Iterable[DRef] = (),
    keep_rrefs: Iterable[RRef] = (),
    dry_run: bool = False,
    timeout: float | None = None,
    older_than: float | None = None,
    keep_last: int | None = None,
) -> GCResult:
    """Delete every derivation and realization no root keeps alive.

    Runs beside instantiates and realizes of any process: what a live
    process registered (``store.temproots``) is a root, and a realize waits
    for the collector at most one short batch (``docs/gc.md``).

    Args:
        S: the store (default: the current one).
        keep_drefs: derivations to keep (with the derivations they depend on);
            their realizations are kept only if a root keeps them.
        keep_rrefs: realizations to keep (with everything they were built from).
        dry_run: only report what would be deleted.
        timeout: give up waiting for another collection, or for a process's
            short registration, after this many seconds.
        older_than: delete only garbage stored more than this many seconds
            ago; newer objects are roots (with what they need).
        keep_last: keep the ``keep_last`` most recently stored realizations of
            every derivation (and what they need) as roots.

    Returns:
        a :class:`GCResult`.

    Raises:
        LockError: another collection ran longer than ``timeout``.
        RefError: an entry of ``keep_drefs``/``keep_rrefs`` is not a valid ref.
        OptionError: a bad ``older_than`` or ``keep_last``.
        StoreError: the store cannot be written (a real run on a read-only
            store), holds garbage where its folders belong, or a kept object's
            dependencies cannot be read.
    """
    s = fsS(S)
    check_store(s)
    kd, kr = _keep_lists(keep_drefs, keep_rrefs)
    if older_than is not None and (
        isinstance(older_than, bool)
        or not isinstance(older_than, (int, float))
        or not older_than >= 0
    ):
        raise OptionError(
            f"older_than={older_than!r}: give a number of seconds, 0 or more (e.g. "
            "7 * 86400 for a week)",
            option="older_than",
            value=older_than,
        )
    age = None if older_than is None else float(older_than)
    if keep_last is not None and (type(keep_last) is not int or keep_last < 0):
        raise OptionError(
            f"keep_last={keep_last!r}: give the number (0 or more) of newest realizations "
            "to keep per derivation",
            option="keep_last",
            value=keep_last,
        )
    with gc_collector(s, timeout=timeout) as writable:
        if not writable and not dry_run:
            raise StoreError(
                f"cannot collect garbage in {s.storage!r}: this process cannot write to the "
                "store (read-only mount or another user's store); run gc as its owner, or "
                "use dry_run=True to see what would be deleted",
                path=s.storage,
            )
        return _collect(s, kd, kr, dry_run, _Policy(age, keep_last), report=True, timeout=timeout)


@dataclass(frozen=True)
class _Policy:
    older_than: float | None = None
    keep_last: int | None = None


def _policy_roots(g: _Graph, p: _Policy) -> list[GCRoot]:
    out: list[GCRoot] = []
    if p.keep_last:
        for rs in g.drv_rrefs.values():
            newest = sorted(rs, key=lambda r: (-g.ctime.get(r, 0.0), r))[: p.keep_last]
            out.extend(GCRoot(r, f"keep_last {p.keep_last}") for r in sorted(newest))
    if p.older_than is not None:
        cut = time.time() - p.older_than
        out.extend(
            GCRoot(x, f"older_than {p.older_than:g}") for x, t in sorted(g.ctime.items()) if t > cut
        )
    return out


class _Live:
    """The live sets, grown as processes register more temporary roots."""

    def __init__(self, g: _Graph, rrefs: Iterable[RRef], drefs: Iterable[DRef]) -> None:
        self.g = g
        self.r, self.d = compute_live(rrefs, drefs, g.rref_deps, g.dref_deps)

    def add(self, refs: Iterable[str]) -> None:
        rs = [RRef(x) for x in refs if is_rref(x) and x not in self.r]
        ds = [DRef(x) for x in refs if is_dref(x) and x not in self.d]
        if not rs and not ds:
            return
        new_r, new_d = compute_live(rs, ds, self.g.rref_deps, self.g.dref_deps)
        self.r |= new_r
        self.d |= new_d


def _collect(
    S: StorageSettings,
    kd: list[DRef],
    kr: list[RRef],
    dry_run: bool,
    policy: _Policy,
    *,
    report: bool,
    timeout: float | None = None,
) -> GCResult:
    """Find and (unless ``dry_run``) delete garbage; ``report=False`` skips sizes and leftovers."""
    g = scan_graph(S, markers=report)
    roots: list[GCRoot] = []
    stale: list[Path] = []
    for rt in list_roots(S):
        if rt.rref is None:
            stale.append(rt.entry)
        else:
            roots.append(GCRoot(rt.rref, f"link {rt.link}"))
    roots.extend(GCRoot(r, "keep_rrefs") for r in kr)
    roots.extend(GCRoot(d, "keep_drefs") for d in kd)
    roots.extend(_policy_roots(g, policy))
    reader = TempRootsReader(S, remove_dead=not dry_run)
    # Read after the scan: an object the scan saw was registered before it
    # became visible (insertion) or is re-checked by its finder (docs/gc.md).
    # Where this process cannot write, it only reports: it reads without the lock.
    with gc_exclusive(S, timeout=timeout) if store_writable(S) else contextlib.nullcontext():
        temp = reader.read()
    roots.extend(GCRoot(x, "temproot") for x in sorted(temp))
    root_rrefs = [RRef(x.ref) for x in roots if is_rref(x.ref)]
    root_drefs = [DRef(x.ref) for x in roots if is_dref(x.ref)]
    live = _Live(g, root_rrefs, root_drefs)
    blind = [x for x in g.unreadable if x in live.r or x in live.d]
    if blind:
        # What a live object depends on is unknown: deleting anything could
        # break it. Refuse before touching the store.
        raise StoreError(
            f"cannot collect garbage in {S.storage!r}: the dependencies of {blind[0]}, which "
            "is kept alive, cannot be read (its context.json or config.json is missing or "
            "damaged); nothing was deleted. Run `pylightnix verify` (verify(repair=...)) "
            "to find and remove damaged realizations, then collect again",
            path=S.storage,
        )
    whole = sorted(d for d in g.drv_rrefs if d not in live.d)
    dead_r = [r for d, rs in g.drv_rrefs.items() if d in live.d for r in rs if r not in live.r]
    if dry_run:
        sizes = _sizes_in_place(S, g, dead_r, whole) if report else {}
        leftovers: list[str] = []
        if report:
            leftovers = [*_tmp_leftovers(S, g, None), *(p for _, p in _dangling(S, g, live))]
        locks = _dead_lockfiles(S, _live_dirs(live))
        swept = [*leftovers, *(reader.dead_paths()), *_orphan_locks(g, locks)]
        freed = sum(sizes.values()) + sum(tree_bytes(p) for p in leftovers)
        deleted_r = sorted({*dead_r, *(r for d in whole for r in g.drv_rrefs[d])})
        return GCResult(
            tuple(whole), tuple(deleted_r), freed, tuple(roots), tuple(stale),
            tuple(Path(p) for p in sorted(swept)), True, sizes,
        )  # fmt: skip
    return _delete(S, g, live, reader, dead_r, whole, roots, stale, timeout)


def _live_dirs(live: _Live) -> set[str]:
    return {dref_dirname(d) for d in live.d}


def _dangling(S: StorageSettings, g: _Graph, live: _Live) -> list[tuple[RRef, str]]:
    """Index markers of live derivations whose realization is not stored: (its RRef, path)."""
    out: list[tuple[RRef, str]] = []
    for dref, ms in g.markers.items():
        if dref not in live.d:
            continue
        dhash, name = parse_dref(dref)
        stored = {parse_rref(r)[0] for r in g.drv_rrefs.get(dref, [])}
        for h, paths in ms.items():
            r = mkrref(h, dhash, name)  # type: ignore[arg-type]
            if h in stored or r in live.r:
                continue
            if not os.path.isdir(os.path.join(S.storage, dref_dirname(dref), h)):
                out.extend((r, p) for p in paths)
    return sorted(out)


def _delete(
    S: StorageSettings,
    g: _Graph,
    live: _Live,
    reader: TempRootsReader,
    dead_r: list[RRef],
    whole: list[DRef],
    roots: list[GCRoot],
    stale: list[Path],
    timeout: float | None,
) -> GCResult:
    """Move the garbage out of the store in short exclusive batches, then empty the trash."""
    # A crash between an insertion's rename and its chmod leaves the top folder
    # of a complete realization writable: seal it.
    for p in g.unsealed:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, 0o555)
    trash = mkdtemp_in(S.tmpdir, "gc-trash")
    todo: list[str] = [*dead_r, *whole]
    moved: list[tuple[str, str]] = []  # (ref, its path in the trash)
    dangling: list[str] = []
    # Found with no lock held; the last exclusive section removes those still
    # dangling that no process registered meanwhile (an insertion in flight).
    candidates = _dangling(S, g, live)
    i = 0
    while True:
        if i:
            time.sleep(BATCH_PAUSE)
        with gc_exclusive(S, timeout=timeout):
            # What processes registered since the last batch stays, with its closure.
            new = reader.read()
            live.add(new)
            t0 = time.monotonic()
            n = 0
            while i < len(todo) and n < BATCH_MAX and time.monotonic() - t0 < BATCH_SECONDS:
                ref = todo[i]
                i += 1
                n += 1
                todo.extend(_move_dead(S, g, live, ref, trash, len(moved), moved))
            if i >= len(todo):
                # Markers whose realization is missing and that nobody is inserting.
                dangling = [
                    p
                    for r, p in candidates
                    if r not in live.r and not os.path.isdir(rref2path_(r, S)) and _unlink_quiet(p)
                ]
                break
    # Index folders emptied, outside the lock: rmdir takes only an empty folder,
    # and an insertion racing with it makes the folder again (insert._make_marker).
    touched: set[str] = {dref2path(rref2dref(RRef(r)), S) for r, _ in moved if is_rref(r)}
    touched |= {os.path.dirname(os.path.dirname(os.path.dirname(p))) for p in dangling}
    for ddir in sorted(touched):
        _remove_empty_index_dirs(ddir)
    leftovers = _tmp_leftovers(S, g, trash)
    freed = sum(remove_tree_counting(p) for p in leftovers)
    locks = _orphan_locks(
        g, [p for p in _dead_lockfiles(S, _live_dirs(live)) if _unlink_lockfile(p)]
    )
    for e in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(e)
    sizes = _delete_moved(g, moved)
    remove_tree_counting(trash)
    swept = sorted([*leftovers, *dangling, *reader.dead_paths(), *locks])
    deleted_d = sorted(DRef(r) for r, _ in moved if is_dref(r))
    deleted_r = sorted(
        {
            *(RRef(r) for r, _ in moved if is_rref(r)),
            *(r for d in deleted_d for r in g.drv_rrefs[d]),
        }
    )
    return GCResult(
        tuple(deleted_d),
        tuple(deleted_r),
        freed + sum(sizes.values()),
        tuple(roots),
        tuple(stale),
        tuple(Path(p) for p in swept),
        False,
        sizes,
    )


def _move_dead(
    S: StorageSettings,
    g: _Graph,
    live: _Live,
    ref: str,
    trash: str,
    k: int,
    moved: list[tuple[str, str]],
) -> list[str]:
    """Move one object to the trash unless it became live; return refs to consider instead.

    A derivation that became live (a process registered it after the scan)
    stays, but its realizations that are still dead are returned to be
    deleted one by one.
    """
    if is_rref(ref):
        r = RRef(ref)
        if r in live.r:
            return []
        path = rref2path_(r, S)
        if _move_to_trash(path, os.path.join(trash, f"{k}-{os.path.basename(path)}")):
            moved.append((r, os.path.join(trash, f"{k}-{os.path.basename(path)}")))
            for m in g.markers.get(rref2dref(r), {}).get(parse_rref(r)[0], []):
                _unlink_quiet(m)
        return []
    d = DRef(ref)
    if d in live.d:
        return [x for x in g.drv_rrefs[d] if x not in live.r]
    path = dref2path(d, S)
    dst = os.path.join(trash, f"{k}-{os.path.basename(path)}")
    if _move_to_trash(path, dst):
        moved.append((d, dst))
    return []


def _unlink_quiet(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _remove_empty_index_dirs(ddir: str) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for idx in os.listdir(ddir):
            if not idx.startswith(INDEX_DIR):
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for ch in os.listdir(os.path.join(ddir, idx)):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(ddir, idx, ch))  # only succeeds when empty


def _sizes_in_place(
    S: StorageSettings, g: _Graph, dead_r: list[RRef], whole: list[DRef]
) -> dict[str, int]:
    """Sizes of what a collection would delete: each realization, and each derivation
    folder without its realizations (which are listed on their own)."""
    sizes: dict[str, int] = {r: tree_bytes(rref2path_(r, S)) for r in dead_r}
    for d in whole:
        ddir = dref2path(d, S)
        mine: dict[str, RRef] = {parse_rref(r)[0]: r for r in g.drv_rrefs[d]}
        rest = 0
        for n in _listdir(ddir, "a derivation"):
            if n in mine:
                sizes[mine[n]] = tree_bytes(os.path.join(ddir, n))
            else:
                rest += tree_bytes(os.path.join(ddir, n))
        sizes[d] = rest
    return dict(sorted(sizes.items()))


def _delete_moved(g: _Graph, moved: list[tuple[str, str]]) -> dict[str, int]:
    """Delete the objects moved to the trash, measuring each as :func:`_sizes_in_place` does."""
    sizes: dict[str, int] = {}
    for ref, path in moved:
        if is_rref(ref):
            sizes[ref] = remove_tree_counting(path)
            continue
        mine: dict[str, RRef] = {parse_rref(r)[0]: r for r in g.drv_rrefs[DRef(ref)]}
        os.chmod(path, 0o700)
        rest = 0
        for n in os.listdir(path):
            if n in mine:
                sizes[mine[n]] = remove_tree_counting(os.path.join(path, n))
            else:
                rest += remove_tree_counting(os.path.join(path, n))
        # A realization inserted after the scan moved out with its derivation:
        # it is counted with the derivation (no process registered either).
        os.rmdir(path)
        sizes[ref] = rest
    return dict(sorted(sizes.items()))


def _move_to_trash(path: str, dst: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        # A folder moved to another parent must itself be writable (its '..' changes).
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
    try:
        os.rename(path, dst)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def store_gc(
    keep_drefs: Iterable[DRef],
    keep_rrefs: Iterable[RRef],
    S: StorageSettings | None = None,
) -> tuple[set[DRef], set[RRef]]:
    """The seed's ``store_gc``: what a collection keeping these refs would delete.

    Like the seed, it only computes (a dry run of :func:`gc` without sizes and
    leftovers); delete with ``gc(keep_drefs=..., keep_rrefs=...)``. Registered
    result links and live processes' temporary roots are roots here too.

    Returns:
        ``(drefs, rrefs)`` that are not kept alive and may be removed.
    """
    s = fsS(S)
    check_store(s)
    kd, kr = _keep_lists(keep_drefs, keep_rrefs)
    res = _collect(s, kd, kr, True, _Policy(), report=False)
    return set(res.deleted_drefs), set(res.deleted_rrefs)

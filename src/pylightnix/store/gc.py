"""Garbage collection: delete what no root keeps alive (semantics in ``docs/gc.md``).

Roots are the registered result links (``.roots``), the caller's
``keep_rrefs`` and ``keep_drefs``, and every realize in progress: the
collector holds the store's GC lock exclusively, so it runs only while no
instantiate or realize does, and none starts until it is done.

* live realizations = root realizations + everything they were built from
  (transitively, through their stored contexts);
* live derivations = ``keep_drefs`` + the derivations of live realizations
  + everything their configs depend on (transitively).

Everything else is garbage: realizations (renamed into the temporary space,
then removed, so that none is ever seen half-deleted), whole derivation
folders, index markers of removed or missing realizations, lock files of
removed derivations, stale root entries and what processes that no longer
run left in the store's temporary space. The graph is read once and reachability is computed once
over it (:func:`compute_live`), so a collection is linear in the store size.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pylightnix.config import config_deps, mkconfig
from pylightnix.errors import StoreError
from pylightnix.refs import (
    dref_dirname,
    is_hashpart,
    maybe_parse_dref_dirname,
    maybe_parse_rref,
    mkrref,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.fsops import mkdtemp_in, remove_tree
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
from pylightnix.store.locks import gc_exclusive
from pylightnix.store.roots import list_roots
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.verify import read_context_file
from pylightnix.types import DRef, Path, RRef

T = TypeVar("T")
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class GCRoot:
    """One reason something was kept alive.

    Attributes:
        ref: the DRef or RRef kept.
        why: ``"link <path>"`` (a registered result link), ``"keep_rrefs"`` or ``"keep_drefs"``.
    """

    ref: str
    why: str


@dataclass(frozen=True)
class GCResult:
    """What a collection deleted (or, in a dry run, would delete).

    Attributes:
        deleted_drefs: derivations removed whole (config, index, realizations), sorted.
        deleted_rrefs: realizations removed, sorted.
        bytes_freed: apparent size of everything removed (files, links and folders).
        roots: the roots that kept things alive, and why.
        stale_roots: root entries whose link is gone or points outside the store.
        tmp_removed: leftovers removed from the temporary space and the store
            (temporary folders of processes that no longer run, trash,
            half-written files, dangling index markers, lock files of removed
            derivations).
        dry_run: whether this was only a report.
        sizes: the apparent size in bytes of each deleted realization, and of
            each deleted derivation folder without its realizations (config,
            index), by ref; ``bytes_freed`` adds the leftovers to their sum.
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
    unsealed: list[str] = field(default_factory=list)  # realization tops left writable
    unreadable: list[str] = field(default_factory=list)  # refs whose deps are unknown


def _read_context(path: str) -> list[RRef] | None:
    """The RRefs of a stored context file, or ``None`` if it is unreadable."""
    try:
        ctx = read_context_file(path)
    except (OSError, ValueError):
        return None
    return [x for v in ctx.values() for x in v]


def _read_config_deps(path: str) -> list[DRef] | None:
    """The DRefs a stored config mentions, or ``None`` if it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return list(config_deps(mkconfig(json.loads(f.read()))))
    except (OSError, ValueError):
        return None


def scan_graph(S: StorageSettings) -> _Graph:
    """Read the whole dependency graph of a store: one pass over its folders."""
    g = _Graph()
    for n in sorted(os.listdir(S.storage)):
        dref = maybe_parse_dref_dirname(n)
        if dref is None:
            continue
        ddir = os.path.join(S.storage, n)
        try:
            with os.scandir(ddir) as it:
                # d_type tells folders apart without a stat per entry.
                entries = {e.name: e.is_dir(follow_symlinks=False) for e in it}
        except (NotADirectoryError, FileNotFoundError):
            continue
        dhash, name = parse_dref(dref)
        cdeps = _read_config_deps(os.path.join(ddir, CONFIG_FILE))
        if cdeps is None:
            g.unreadable.append(dref)
        g.dref_deps[dref] = cdeps or []
        rs: list[RRef] = []
        for h in sorted(entries):
            if entries[h] and is_hashpart(h):
                r = mkrref(h, dhash, name)  # type: ignore[arg-type]
                rs.append(r)
                rdir = os.path.join(ddir, h)
                rdeps = _read_context(os.path.join(rdir, RESERVED, CONTEXT_FILE))
                if rdeps is None:
                    g.unreadable.append(r)
                g.rref_deps[r] = rdeps or []
                if os.lstat(rdir).st_mode & _WRITE_BITS:
                    g.unsealed.append(rdir)
        g.drv_rrefs[dref] = rs
    return g


def tree_size(path: str) -> int:
    """Apparent size in bytes of a file, link or folder tree (links not followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    return st.st_size + (_content_size(path) if stat.S_ISDIR(st.st_mode) else 0)


def _content_size(folder: str) -> int:
    total = 0
    with os.scandir(folder) as it:
        for e in it:
            total += e.stat(follow_symlinks=False).st_size
            if e.is_dir(follow_symlinks=False):
                total += _content_size(e.path)
    return total


def _leftovers(
    S: StorageSettings, g: _Graph, dead_drefs: set[DRef], live_rrefs: set[RRef]
) -> list[str]:
    """Paths that hold no live object: temp space contents, half-written files, stale markers.

    A stale index marker names a realization that is missing, or that this
    collection deletes.
    """
    out: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        out.extend(
            os.path.join(S.tmpdir, n) for n in sorted(os.listdir(S.tmpdir)) if not _owner_alive(n)
        )
    for dref, rs in g.drv_rrefs.items():
        if dref in dead_drefs:
            continue
        ddir = dref2path(dref, S)
        with contextlib.suppress(FileNotFoundError):
            out.extend(os.path.join(ddir, n) for n in sorted(os.listdir(ddir)) if ".tmp-" in n)
        live = {parse_rref(r)[0] for r in rs if r in live_rrefs}
        out.extend(p for p, m in _index_markers(ddir) if m not in live)
    rdir = os.path.join(S.storage, ROOTS_DIR)
    with contextlib.suppress(FileNotFoundError):
        out.extend(os.path.join(rdir, n) for n in sorted(os.listdir(rdir)) if ".tmp-" in n)
    out.extend(
        os.path.join(S.storage, n) for n in sorted(os.listdir(S.storage)) if n.startswith(".tmp-")
    )
    return out


_MKDTEMP_NAME = re.compile(r"-(\d+)-[A-Za-z0-9_]{8}$")
_UNIQUE_NAME = re.compile(r"^[a-z]+-(\d+)-[0-9a-f]{12}-")


def temp_owner(name: str) -> int | None:
    """The pid a temporary folder name records (``mkdtemp_in``, ``unique_suffix``), if any.

    >>> temp_owner("build-train-4242-k2j4_x9a"), temp_owner("trash-77-0a1b2c3d4e5f-x")
    (4242, 77)
    >>> temp_owner("notes") is None
    True
    """
    m = _MKDTEMP_NAME.search(name) or _UNIQUE_NAME.search(name)
    return int(m.group(1)) if m else None


def _owner_alive(name: str) -> bool:
    """Whether the process that made this temporary entry still runs (then it is kept).

    No realize runs during a collection, but a paused REPL session keeps its
    build folders between calls, and a process may keep a failed build's
    folder for its user: what a live process made is left to it.
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


def _dead_lockfiles(S: StorageSettings, live_dirs: set[str]) -> list[str]:
    d = os.path.join(S.storage, LOCKS_DIR)
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return []
    return [
        os.path.join(d, n)
        for n in names
        # Only build locks (named after a derivation folder): other lock files
        # may belong to code that takes them outside the GC lock.
        if n.endswith(".lock")
        and maybe_parse_dref_dirname(n[: -len(".lock")]) is not None
        and n[: -len(".lock")] not in live_dirs
    ]


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


def _index_dirs(ddir: str) -> list[str]:
    """Index folders of a derivation: ``by-context`` and its siblings (``by-context-*``)."""
    try:
        return [os.path.join(ddir, n) for n in sorted(os.listdir(ddir)) if n.startswith(INDEX_DIR)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _index_markers(ddir: str) -> Iterator[tuple[str, str]]:
    """Every index marker of a derivation folder: ``(path, realization hash)``."""
    for idx in _index_dirs(ddir):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for ch in sorted(os.listdir(idx)):
                cdir = os.path.join(idx, ch)
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    for m in sorted(os.listdir(cdir)):
                        yield os.path.join(cdir, m), m


def _remove_empty_index_dirs(ddir: str) -> None:
    for idx in _index_dirs(ddir):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for ch in os.listdir(idx):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(idx, ch))  # only succeeds when empty


def gc(
    S: StorageSettings | None = None,
    *,
    keep_drefs: Iterable[DRef] = (),
    keep_rrefs: Iterable[RRef] = (),
    dry_run: bool = False,
    timeout: float | None = None,
) -> GCResult:
    """Delete every derivation and realization no root keeps alive.

    Args:
        S: the store (default: the current one).
        keep_drefs: derivations to keep (with the derivations they depend on);
            their realizations are kept only if a root keeps them.
        keep_rrefs: realizations to keep (with everything they were built from).
        dry_run: only report what would be deleted.
        timeout: give up waiting for running realizes after this many seconds.

    Returns:
        a :class:`GCResult`.

    Raises:
        LockError: called inside a realize/instantiate of this process, or timed out.
        RefError: an entry of ``keep_drefs``/``keep_rrefs`` is not a valid ref.
    """
    s = fsS(S)
    check_store(s)
    kd = [DRef(d) for d in keep_drefs]
    kr = [RRef(r) for r in keep_rrefs]
    for d in kd:
        parse_dref(d)
    for r in kr:
        parse_rref(r)
    with gc_exclusive(s, timeout=timeout):
        return _collect(s, kd, kr, dry_run)


def _collect(S: StorageSettings, kd: list[DRef], kr: list[RRef], dry_run: bool) -> GCResult:
    g = scan_graph(S)
    roots: list[GCRoot] = []
    stale: list[Path] = []
    root_rrefs: list[RRef] = []
    for rt in list_roots(S):
        if rt.rref is None:
            stale.append(rt.entry)
        else:
            roots.append(GCRoot(rt.rref, f"link {rt.link}"))
            root_rrefs.append(rt.rref)
    roots.extend(GCRoot(r, "keep_rrefs") for r in kr)
    roots.extend(GCRoot(d, "keep_drefs") for d in kd)
    live_r, live_d = compute_live([*root_rrefs, *kr], kd, g.rref_deps, g.dref_deps)
    blind = [x for x in g.unreadable if x in live_r or x in live_d]
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
    dead_d = {d for d in g.drv_rrefs if d not in live_d}
    dead_r = sorted(
        r for d, rs in g.drv_rrefs.items() if d not in dead_d for r in rs if r not in live_r
    )
    whole = sorted(dead_d)
    all_dead_r = sorted({*dead_r, *(r for d in whole for r in g.drv_rrefs[d])})
    live_dirs = {dref_dirname(d) for d in live_d}
    leftovers = _leftovers(S, g, dead_d, live_r)
    locks = _dead_lockfiles(S, live_dirs)

    freed = sum(tree_size(p) for p in leftovers)
    if dry_run:
        sizes = _sizes_in_place(S, g, dead_r, whole)
        swept = [*leftovers, *locks]
    else:
        sizes, swept = _delete(S, g, dead_r, whole, leftovers, locks, stale)
    return GCResult(
        tuple(whole),
        tuple(all_dead_r),
        freed + sum(sizes.values()),
        tuple(roots),
        tuple(stale),
        tuple(Path(p) for p in swept),
        dry_run,
        sizes,
    )


def _delete(
    S: StorageSettings,
    g: _Graph,
    dead_r: list[RRef],
    whole: list[DRef],
    leftovers: list[str],
    locks: list[str],
    stale: list[Path],
) -> tuple[dict[str, int], list[str]]:
    """Delete what :func:`_collect` found dead; return the sizes and the leftovers removed."""
    # A crash between an insertion's rename and its chmod leaves the top folder
    # of a complete realization writable: seal it.
    for p in g.unsealed:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, 0o555)
    # Each object leaves the store by one rename (it is never seen half
    # deleted); the trash is emptied at the end. A crash leaves the trash in
    # the temporary space, where the next collection finds it.
    trash = mkdtemp_in(S.tmpdir, "gc-trash")
    moved: list[tuple[str, str]] = []  # (ref, its path in the trash)
    for ref, path in [
        *((r, rref2path_(r, S)) for r in dead_r),
        *((d, dref2path(d, S)) for d in whole),
    ]:
        dst = os.path.join(trash, f"{len(moved)}-{os.path.basename(path)}")
        if _move_to_trash(path, dst):
            moved.append((ref, dst))
    for p in leftovers:
        remove_tree(p)
    # Only folders that lost a marker can have become empty.
    for ddir in sorted({os.path.dirname(os.path.dirname(os.path.dirname(p))) for p in leftovers}):
        if os.path.dirname(ddir) == S.storage:
            _remove_empty_index_dirs(ddir)
    removed = [*leftovers, *(p for p in locks if _unlink_lockfile(p))]
    for e in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(e)
    sizes = _delete_moved(g, moved)
    _remove_counting(trash)
    return sizes, removed


def _sizes_in_place(
    S: StorageSettings, g: _Graph, dead_r: list[RRef], whole: list[DRef]
) -> dict[str, int]:
    """Sizes of what a collection would delete: each realization, and each derivation
    folder without its realizations (which are listed on their own)."""
    sizes: dict[str, int] = {r: tree_size(rref2path_(r, S)) for r in dead_r}
    for d in whole:
        ddir = dref2path(d, S)
        mine: dict[str, RRef] = {parse_rref(r)[0]: r for r in g.drv_rrefs[d]}
        rest = os.lstat(ddir).st_size
        with os.scandir(ddir) as it:
            for e in it:
                n = tree_size(e.path)
                if e.name in mine:
                    sizes[mine[e.name]] = n
                else:
                    rest += n
        sizes[d] = rest
    return dict(sorted(sizes.items()))


def _delete_moved(g: _Graph, moved: list[tuple[str, str]]) -> dict[str, int]:
    """Delete the objects moved to the trash, measuring each as :func:`_sizes_in_place` does."""
    sizes: dict[str, int] = {}
    for ref, path in moved:
        if maybe_parse_rref(ref) is not None:
            sizes[ref] = _remove_top(path)
            continue
        # A folder's own size may shrink as entries go (tmpfs): measure it first.
        own = os.lstat(path).st_size
        for r in g.drv_rrefs[DRef(ref)]:
            sizes[r] = _remove_top(os.path.join(path, parse_rref(r)[0]))
        os.chmod(path, 0o700)
        sizes[ref] = own + _remove_counting(path)
    return dict(sorted(sizes.items()))


def _remove_top(path: str) -> int:
    """Delete a folder tree (itself included); return its apparent size."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    os.chmod(path, 0o700)
    return st.st_size + _remove_counting(path)


def _move_to_trash(path: str, dst: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        # A folder moved to another parent must itself be writable (its '..' changes).
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
    os.rename(path, dst)
    return True


def _remove_counting(top: str) -> int:
    """Delete the folder ``top`` and its tree; return the apparent size of what was in it.

    One pass: only folders get their write bit back (needed to delete what is
    in them); files are unlinked as they are.
    """
    total = 0
    with os.scandir(top) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            total += st.st_size
            if stat.S_ISDIR(st.st_mode):
                os.chmod(e.path, 0o700)
                total += _remove_counting(e.path)
            else:
                os.unlink(e.path)
    os.rmdir(top)
    return total


def store_gc(
    keep_drefs: Iterable[DRef],
    keep_rrefs: Iterable[RRef],
    S: StorageSettings | None = None,
) -> tuple[set[DRef], set[RRef]]:
    """The seed's ``store_gc``: what a collection keeping these refs would delete.

    Like the seed, it only computes (a dry run of :func:`gc`); delete with
    ``gc(keep_drefs=..., keep_rrefs=...)``. Registered result links are roots
    here too.

    Returns:
        ``(drefs, rrefs)`` that are not kept alive and may be removed.
    """
    r = gc(S, keep_drefs=keep_drefs, keep_rrefs=keep_rrefs, dry_run=True)
    return set(r.deleted_drefs), set(r.deleted_rrefs)

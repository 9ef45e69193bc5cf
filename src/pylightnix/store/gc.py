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
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pylightnix.errors import OptionError, StoreError
from pylightnix.gcpause import library_work
from pylightnix.refs import (
    is_dref,
    is_rref,
    mkrref,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.fsops import mkdtemp_in, remove_tree_counting, tree_bytes
from pylightnix.store.gcgraph import StoreGraph, compute_live, listdir_store, scan_graph
from pylightnix.store.index import compact_index
from pylightnix.store.layout import (
    check_store,
    dref2path,
    rref2path_,
)
from pylightnix.store.leftovers import (
    dead_lockfiles,
    orphan_locks,
    tmp_leftovers,
    unlink_lockfile,
)
from pylightnix.store.locks import gc_collector, gc_exclusive, store_writable
from pylightnix.store.roots import list_roots
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.temproots import TempRootsReader
from pylightnix.types import DRef, Path, RRef

BATCH_MAX = 64
"""At most this many objects leave the store per exclusive section of the GC lock."""
BATCH_SECONDS = 0.002
"""An exclusive section stops taking new objects after this long (a rename is ~10 us)."""
BATCH_PAUSE = 0.002
"""Least pause between two exclusive sections; the collector also pauses at least as
long as the last section took (at most half the time holding the lock). ``flock``
does not hand a released lock to its waiters: without a pause the collector takes
it again before a woken realize runs (on a loaded machine that takes a while), and
that realize would wait for several batches."""


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
        with library_work():
            return _collect(
                s, kd, kr, dry_run, _Policy(age, keep_last), report=True, timeout=timeout
            )


@dataclass(frozen=True)
class _Policy:
    older_than: float | None = None
    keep_last: int | None = None


def _policy_roots(g: StoreGraph, p: _Policy) -> list[GCRoot]:
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

    def __init__(self, g: StoreGraph, rrefs: Iterable[RRef], drefs: Iterable[DRef]) -> None:
        self.g = g
        rrefs, drefs = list(rrefs), list(drefs)
        self.r, self.d = compute_live(rrefs, drefs, g.rref_deps, g.dref_deps, g.rref_drv)
        # Every root as registered, also those the scan did not see: an insertion
        # in flight registers its realization before making its index marker and
        # renaming it in, so the scan may see the marker of an object that is not
        # in the graph yet; such a marker is not dangling.
        self.registered: set[str] = {*rrefs, *drefs}

    def keeps(self, r: RRef) -> bool:
        """Whether ``r`` is live or registered by some process (maybe still in flight)."""
        return r in self.r or r in self.registered

    def add(self, refs: Iterable[str]) -> None:
        refs = list(refs)
        self.registered.update(refs)
        rs = [RRef(x) for x in refs if is_rref(x) and x not in self.r]
        ds = [DRef(x) for x in refs if is_dref(x) and x not in self.d]
        if not rs and not ds:
            return
        new_r, new_d = compute_live(rs, ds, self.g.rref_deps, self.g.dref_deps, self.g.rref_drv)
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
    times = bool(policy.keep_last) or policy.older_than is not None
    g = scan_graph(S, leftovers=report, times=times, modes=not dry_run)
    reader = TempRootsReader(S, remove_dead=not dry_run)
    # Read after the scan: an object the scan saw was registered before it
    # became visible (insertion) or is re-checked by its finder (docs/gc.md).
    # Links after the records: a process that linked its result and exited
    # before the records were read made its link before.
    # Where this process cannot write, it only reports: it reads without the lock.
    with gc_exclusive(S, timeout=timeout) if store_writable(S) else contextlib.nullcontext():
        temp = reader.read()
        links, stale = _link_roots(S)
    roots = [
        *links,
        *(GCRoot(r, "keep_rrefs") for r in kr),
        *(GCRoot(d, "keep_drefs") for d in kd),
        *_policy_roots(g, policy),
        *(GCRoot(x, "temproot") for x in sorted(temp)),
    ]
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
            leftovers = tmp_leftovers(S, g, None)
        locks = dead_lockfiles(S, live.d)
        swept = [*leftovers, *(reader.dead_paths()), *orphan_locks(g, locks)]
        freed = sum(sizes.values()) + sum(tree_bytes(p) for p in leftovers)
        deleted_r = sorted({*dead_r, *(r for d in whole for r in g.drv_rrefs[d])})
        return GCResult(
            tuple(whole), tuple(deleted_r), freed, tuple(roots), tuple(stale),
            tuple(Path(p) for p in sorted(swept)), True, sizes,
        )  # fmt: skip
    return _delete(S, g, live, reader, dead_r, whole, roots, stale, timeout)


def _link_roots(S: StorageSettings) -> tuple[list[GCRoot], list[Path]]:
    """The registered result links as roots, and the stale root entries."""
    roots: list[GCRoot] = []
    stale: list[Path] = []
    for rt in list_roots(S):
        if rt.rref is None:
            stale.append(rt.entry)
        else:
            roots.append(GCRoot(rt.rref, f"link {rt.link}"))
    return roots, stale


def _delete(
    S: StorageSettings,
    g: StoreGraph,
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
    i = 0
    held = 0.0
    while True:
        if i:
            time.sleep(max(BATCH_PAUSE, held))
        with gc_exclusive(S, timeout=timeout):
            h0 = time.monotonic()
            # What processes registered since the last batch stays, with its closure.
            live.add(reader.read())
            live.add(x.ref for x in _link_roots(S)[0])
            t0 = time.monotonic()
            n = 0
            while i < len(todo) and n < BATCH_MAX and time.monotonic() - t0 < BATCH_SECONDS:
                ref = todo[i]
                i += 1
                n += 1
                todo.extend(_move_dead(S, g, live, ref, trash, len(moved), moved))
            held = time.monotonic() - h0
            if i >= len(todo):
                break
    # The indexes of derivations that lost realizations drop their lines, and
    # those of crashed insertions (docs/gc.md: an insertion in flight keeps its line).
    gone = {DRef(r) for r, _ in moved if is_dref(r)}
    touched = {rref2dref(RRef(r)) for r, _ in moved if is_rref(r)} - gone
    touched |= _crashed_insertions(S, g, reader, gone)
    _compact_indexes(S, sorted(touched), live, reader)
    leftovers = tmp_leftovers(S, g, trash)
    freed = sum(remove_tree_counting(p) for p in leftovers)
    locks = orphan_locks(g, [p for p in dead_lockfiles(S, live.d) if unlink_lockfile(p)])
    # A link made again at the same path since the first look is a root again.
    still = set(_link_roots(S)[1])
    for e in stale:
        if e in still:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e)
    sizes = _delete_moved(g, moved)
    remove_tree_counting(trash)
    swept = sorted([*leftovers, *reader.dead_paths(), *locks])
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
    g: StoreGraph,
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
        return []
    d = DRef(ref)
    if d in live.d:
        return [x for x in g.drv_rrefs[d] if x not in live.r]
    path = dref2path(d, S)
    dst = os.path.join(trash, f"{k}-{os.path.basename(path)}")
    if _move_to_trash(path, dst):
        moved.append((d, dst))
    return []


def _crashed_insertions(
    S: StorageSettings, g: StoreGraph, reader: TempRootsReader, gone: set[DRef]
) -> set[DRef]:
    """Derivations whose index may name a realization that never arrived.

    An insertion registers its realization, appends its index line, then
    renames its folder in; a process killed in between leaves the line, and
    its temporary-roots record, unlocked. So the realizations named by the
    records of dead processes whose folders are missing are the only
    candidates: no index is read to find them.
    """
    # What the scan found exists; the rest is looked at (it may have arrived since).
    unseen = [RRef(r) for r in reader.dead_refs if r not in g.rref_drv and is_rref(r)]
    return {rref2dref(r) for r in unseen if not os.path.isdir(rref2path_(r, S))} - gone


def _compact_indexes(
    S: StorageSettings, drefs: list[DRef], live: _Live, reader: TempRootsReader
) -> None:
    """Drop the lines of realizations that are gone from the indexes of ``drefs``.

    A line whose folder is missing stays when its realization is registered
    by a live process: an insertion appends its line, then renames its
    folder in. The registrations are read again once the index is locked
    against appenders, so any line appended before was registered before.
    """
    for dref in drefs:
        dhash, name = parse_dref(dref)
        ddir = dref2path(dref, S)

        def keep(h: str, dhash: str = dhash, name: str = name, ddir: str = ddir) -> bool:
            r = mkrref(h, dhash, name)  # type: ignore[arg-type]
            return live.keeps(r) or os.path.isdir(os.path.join(ddir, h))

        def locked() -> None:
            live.add(reader.read())

        with contextlib.suppress(OSError):
            compact_index(S, dref, keep, locked=locked)


def _sizes_in_place(
    S: StorageSettings, g: StoreGraph, dead_r: list[RRef], whole: list[DRef]
) -> dict[str, int]:
    """Sizes of what a collection would delete: each realization, and each derivation
    folder without its realizations (which are listed on their own)."""
    sizes: dict[str, int] = {r: tree_bytes(rref2path_(r, S)) for r in dead_r}
    for d in whole:
        mine: dict[str, RRef] = {parse_rref(r)[0]: r for r in g.drv_rrefs[d]}
        rest = 0
        ddir = dref2path(d, S)
        try:
            with os.scandir(ddir) as it:
                for e in it:
                    # One lstat for a file (tree_bytes would make the same), none for a folder.
                    n = tree_bytes(e.path) if e.is_dir(follow_symlinks=False) else _size(e)
                    if e.name in mine:
                        sizes[mine[e.name]] = n
                    else:
                        rest += n
        except FileNotFoundError:
            pass  # deleted since the scan: nothing of it is left to measure
        except NotADirectoryError:
            listdir_store(ddir, "a derivation")  # raises the StoreError saying what to do
        sizes[d] = rest
    return dict(sorted(sizes.items()))


def _size(e: os.DirEntry[str]) -> int:
    """What :func:`tree_bytes` says of a file or link entry (0 if it vanished)."""
    try:
        return e.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0


def _delete_moved(g: StoreGraph, moved: list[tuple[str, str]]) -> dict[str, int]:
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

"""Temporary GC roots: what a live process uses or creates stays alive (``docs/gc.md``).

Each process that registers something gets one record in the store,
``<storage>/.temproots/<pid>-<random>``: a file it holds under an
``flock`` for its whole life (the kernel drops the lock when the process
dies, even after ``SIGKILL``) and appends refs to, one per line. The
collector reads the records whose lock it cannot take; a record whose lock
it can take belongs to a dead process and is removed.

Registration happens before the object can be seen as garbage:

* an object about to be inserted is registered before its index marker and
  its rename (``insert.py``), so a collection that sees it also sees the
  registration;
* an object that was found (matched, or named by a link being made) is
  registered and then checked to exist, both under the GC lock in shared
  mode; the collector deletes only under that lock held exclusively, after
  reading every record again. So either the check sees the object gone (the
  caller looks again, or builds), or the collector sees the registration.

Registration is batched: one ``write`` of all new refs per call, and a ref
the process registered before costs a set lookup. A store the process
cannot write (read-only mount) gets no record: no collection can run there.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from pylightnix.errors import StoreError
from pylightnix.refs import is_dref, is_rref
from pylightnix.store.fsops import store_os_error, store_stage
from pylightnix.store.layout import TEMPROOTS_DIR, dref2path, is_whole, rref_folder
from pylightnix.store.locks import gc_shared
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef

_NO_RECORD = (errno.EROFS, errno.EACCES, errno.EPERM)
_RECORD_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC


@dataclass
class _Record:
    path: str
    fd: int  # -1: the store cannot be written, nothing to register
    seen: set[str] = field(default_factory=set)
    # Registered and then found stored: alive since, no need to look again.
    confirmed: set[str] = field(default_factory=set)


_lock_box = [threading.RLock()]  # replaced in a forked child (the parent's may be held)
_records: dict[str, _Record] = {}  # storage -> this process's record


def _forget_after_fork() -> None:
    # The child shares the parent's open record (and its lock): it must not
    # append to it or release it; it makes its own record when it registers.
    _lock_box[0] = threading.RLock()
    for rec in _records.values():
        if rec.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(rec.fd)
    _records.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _open_record(S: StorageSettings) -> _Record:
    d = os.path.join(S.storage, TEMPROOTS_DIR)
    for _ in range(100):
        path = os.path.join(d, f"{os.getpid()}-{os.urandom(6).hex()}")
        try:
            try:
                fd = os.open(path, _RECORD_FLAGS, 0o644)
            except FileNotFoundError:
                os.makedirs(d, exist_ok=True)
                continue
        except OSError as e:
            if e.errno in _NO_RECORD:
                # Nobody can collect in a store this process cannot write to
                # (docs/gc.md: read-only stores); a store owned by another user
                # is that user's to collect, as the docs warn.
                return _Record(path, -1)
            raise store_os_error(e, "creating this process's temporary-roots record", path) from e
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A collector may have taken the lock between our create and flock,
        # judged the record dead and removed it: then start over.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return _Record(path, fd)
        except FileNotFoundError:
            pass
        os.close(fd)
    raise StoreError(f"cannot create a temporary-roots record in {d!r}", path=d)


def _record(S: StorageSettings) -> _Record:
    rec = _records.get(S.storage)
    if rec is None:
        rec = _records[S.storage] = _open_record(S)
    return rec


def _exists(S: StorageSettings, ref: str) -> bool:
    if is_rref(ref):
        return os.path.isdir(rref_folder(S.storage, ref))
    return is_dref(ref) and os.path.isdir(dref2path(DRef(ref), S))


def add_temproots(
    S: StorageSettings,
    refs: Iterable[str],
    *,
    check: bool = False,
    whole: Collection[str] = (),
) -> list[str]:
    """Keep ``refs`` (DRefs and RRefs) alive for the rest of this process (or until released).

    One ``write`` to this process's record for all refs not registered
    before, under the GC lock held shared (a few microseconds); a collection
    that starts or continues after it keeps the refs and everything they
    need. Insertion and import call it before an object becomes visible, so
    whatever a process adds to the store is protected from the start.

    Args:
        S: the store.
        refs: the refs to keep.
        check: also report which of ``refs`` are not in the store (checked
            under the same lock): a collection may have deleted an object
            between the moment it was found and its registration.
        whole: realizations among ``refs`` that ``check`` looks for as whole
            ones (their reserved folder in place), even if found before: refs
            an index names whose insertion may still be in flight.

    Returns:
        the refs that are missing (always empty without ``check``).

    Raises:
        StoreError: the record cannot be written (no space, garbage in the
            store where ``.temproots`` belongs).
    """
    want = list(dict.fromkeys(refs))
    with _lock_box[0]:
        rec = _record(S)
        new = [r for r in want if r not in rec.seen]
        if rec.fd < 0 or not new:
            # Registered before (kept alive since then) or cannot be registered.
            return _missing(S, rec, want, whole) if check else []
        data = "".join(f"{r}\n" for r in new).encode()
        with gc_shared(S):
            with store_stage("registering temporary GC roots", rec.path):
                os.write(rec.fd, data)
            rec.seen.update(new)
            return _missing(S, rec, want, whole) if check else []


def confirm_temproots(S: StorageSettings, refs: Iterable[str]) -> None:
    """Note that ``refs``, registered by this process, were stored after their
    registration (an insertion just put them in place): a later ``check`` need
    not look for them (see :func:`_missing`)."""
    with _lock_box[0]:
        rec = _records.get(S.storage)
        if rec is not None and rec.fd >= 0:
            rec.confirmed.update(r for r in refs if r in rec.seen)


def _missing(
    S: StorageSettings, rec: _Record, refs: list[str], whole: Collection[str] = ()
) -> list[str]:
    """Those of ``refs`` not stored; one found stored after its registration is not
    looked at again (no collection deletes it while the record lives), unless it is
    to be checked ``whole``."""
    out: list[str] = []
    for r in refs:
        if r in whole:
            here = is_whole(rref_folder(S.storage, r))
        elif r in rec.confirmed:
            continue
        else:
            here = _exists(S, r)
        if not here:
            out.append(r)
        elif rec.fd >= 0 and r in rec.seen:
            rec.confirmed.add(r)
    return out


def my_temproots(S: StorageSettings | None = None) -> set[str]:
    """The refs this process keeps alive as temporary roots in the store ``S``."""
    s = fsS(S)
    with _lock_box[0]:
        rec = _records.get(s.storage)
        return set(rec.seen) if rec is not None else set()


def release_temproots(S: StorageSettings | None = None) -> None:
    """Stop keeping alive what this process registered in ``S`` (realize results included).

    The next registration starts a new record. Objects still needed by a
    realize running in another thread of this process lose their protection
    too: release between realizes.
    """
    _release(fsS(S).storage)


def release_all_temproots() -> None:
    """:func:`release_temproots` for every store this process registered in."""
    with _lock_box[0]:
        stores = list(_records)
    for st in stores:
        _release(st)


# A process that ends normally removes its records; a killed one leaves them to
# the next collection, which finds them unlocked.
atexit.register(release_all_temproots)


def _release(storage: str) -> None:
    with _lock_box[0]:
        rec = _records.pop(storage, None)
    if rec is not None and rec.fd >= 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rec.path)
        os.close(rec.fd)


@dataclass
class TempRootsReader:
    """The collector's view of every live process's records, read incrementally.

    :meth:`read` returns the refs registered since the previous call (all of
    them on the first call); records of dead processes are removed (not in a
    dry run). Call it under :func:`~pylightnix.store.locks.gc_exclusive`.
    """

    S: StorageSettings
    remove_dead: bool = True
    offsets: dict[str, int] = field(default_factory=dict)
    dead: list[str] = field(default_factory=list)
    dead_refs: set[str] = field(default_factory=set)
    """What the records of dead processes named (their possible unfinished insertions)."""

    def dead_paths(self) -> list[str]:
        """Records of dead processes found so far (removed unless a dry run)."""
        return list(self.dead)

    def read(self) -> set[str]:
        d = os.path.join(self.S.storage, TEMPROOTS_DIR)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return set()
        except NotADirectoryError:
            return set()  # garbage where the folder belongs: nobody can register there
        out: set[str] = set()
        for n in names:
            path = os.path.join(d, n)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, IsADirectoryError):
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # held: a live process
                else:
                    # Nobody holds it: its process is gone. What it registered tells
                    # which insertions it may have left half done (docs/gc.md).
                    if path not in self.dead:
                        self.dead.append(path)
                        self.dead_refs.update(
                            os.pread(fd, 1 << 30, 0).decode(errors="replace").split()
                        )
                        if self.remove_dead:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(path)
                    continue
                off = self.offsets.get(path, 0)
                data = os.pread(fd, 1 << 30, off)
                end = data.rfind(b"\n") + 1  # a line being written is not read yet
                self.offsets[path] = off + end
                out.update(data[:end].decode(errors="replace").split())
            finally:
                os.close(fd)
        return out

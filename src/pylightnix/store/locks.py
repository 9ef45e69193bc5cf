"""Kernel locks (``fcntl.flock``) that die with their holder.

* a **build lock** per derivation: one build of a derivation at a time;
* the store-wide **GC lock**, held only for short critical sections (never
  for a whole realize, see ``docs/gc.md``): shared while a process registers
  temporary roots (``temproots.py``) and checks that what it registered
  still exists, exclusive while the collector reads the temporary roots and
  moves one bounded batch of garbage out of the store;
* the **collector lock**: one garbage collection at a time; only collectors
  wait on it.

The GC lock is re-entrant within a process in shared mode, and a shared
request from the thread that holds it exclusively passes at once. Waiters
log who holds a lock (pid, host, since when) when they wait long.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

from pylightnix.errors import LockError
from pylightnix.refs import dref_dirname
from pylightnix.store.fsops import store_stage, this_pid
from pylightnix.store.layout import LOCKS_DIR
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef

log = logging.getLogger("pylightnix.locks")

GC_LOCK = "gc.lock"
COLLECTOR_LOCK = "gc.collector"

WAIT_LOG_AFTER = 5.0
"""Seconds of waiting after which a waiter logs who holds the lock."""


def _holder_text() -> bytes:
    return (
        f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n".encode()
    )


def _note_holder(fd: int) -> None:
    """Write who holds the lock into its file (waiters log it); skipped where read-only."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text(), 0)


def _read_holder(fd: int) -> str:
    try:
        return (
            os.pread(fd, 200, 0).decode(errors="replace").strip()
            or "other processes (realizes record no holder)"
        )
    except OSError:
        return "an unknown process"


def _open_lockfile(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # A store this process cannot write (read-only mount, another user's):
        # flock works on a descriptor opened for reading.
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _log_wait(fd: int, what: str) -> None:
    log.warning("waiting for %s held by %s", what, _read_holder(fd))


def _acquire(fd: int, op: int, what: str, timeout: float | None) -> None:
    """Take ``op`` on ``fd``; a long wait is logged, and times out if ``timeout`` is set."""
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if timeout is None:
        # Block in the kernel: the waiter wakes as soon as the lock is free (a
        # poll would sleep past it, and could miss the short gap between two
        # collections run back to back). A timer thread logs a long wait.
        timer = threading.Timer(WAIT_LOG_AFTER, _log_wait, (fd, what))
        timer.daemon = True
        timer.start()
        try:
            fcntl.flock(fd, op)
        finally:
            timer.cancel()
        return
    t0 = time.monotonic()
    logged = False
    delay = 0.002
    while True:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - t0
        if not logged and waited > WAIT_LOG_AFTER:
            _log_wait(fd, what)
            logged = True
        if waited > timeout:
            raise LockError(
                f"timed out after {timeout:.0f}s waiting for {what} held by {_read_holder(fd)}",
                path=what,
            )


@contextlib.contextmanager
def build_lock(S: StorageSettings, dref: DRef, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the build lock of ``dref`` within the block."""
    path = os.path.join(S.storage, LOCKS_DIR, dref_dirname(dref) + ".lock")
    with store_stage(f"opening the build lock of {dref}", path):
        fd = _open_lockfile(path)
    try:
        _acquire(fd, fcntl.LOCK_EX, f"build lock on {dref}", timeout)
        try:
            _note_holder(fd)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_shared_lock = threading.Lock()
_shared_count: dict[str, tuple[int, int]] = {}  # storage -> (fd, holders in this process)
_exclusive_owner: dict[str, int] = {}  # storage -> the thread holding gc_exclusive
_shared_threads: dict[tuple[str, int], int] = {}  # (storage, thread) -> its nested holds


@contextlib.contextmanager
def gc_shared(S: StorageSettings, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the store-wide GC lock in shared mode (re-entrant within the process).

    For short critical sections only (registering temporary roots): the
    collector waits for every holder before each batch it deletes.

    Raises:
        LockError: a garbage collection held the lock for more than ``timeout`` seconds.
    """
    key = S.storage
    if _exclusive_owner.get(key) == threading.get_ident():
        # This thread collects (e.g. a removal under gc_exclusive calls a query
        # that protects itself): exclusive already includes shared.
        yield
        return
    me = (key, threading.get_ident())
    with _shared_lock:
        ent = _shared_count.get(key)
        if ent is not None:
            _shared_count[key] = (ent[0], ent[1] + 1)
        else:
            _shared_count[key] = (_take_shared(S, timeout), 1)
        _shared_threads[me] = _shared_threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _shared_lock:
            if _shared_threads[me] == 1:
                del _shared_threads[me]
            else:
                _shared_threads[me] -= 1
            fd, n = _shared_count[key]
            if n == 1:
                del _shared_count[key]
                fcntl.flock(fd, fcntl.LOCK_UN)  # the descriptor stays open for the next time
            else:
                _shared_count[key] = (fd, n - 1)


def _open_gc_lock(S: StorageSettings) -> int:
    path = os.path.join(S.storage, LOCKS_DIR, GC_LOCK)
    with store_stage("opening the GC lock", path):
        return _open_lockfile(path)


_shared_fds: dict[str, tuple[int, int]] = {}
"""storage -> (pid, descriptor of its GC lock kept open for shared holds).

Registrations take the lock shared several times per build: opening the file
each time cost more than the rest of a registration. A forked child opens
its own (a lock taken or dropped through the parent's descriptor would be
the parent's), and a lock file replaced meanwhile (the store removed and
made again) is opened again.
"""


def _take_shared(S: StorageSettings, timeout: float | None) -> int:
    pid = this_pid()
    kept = _shared_fds.get(S.storage)
    fd = kept[1] if kept is not None and kept[0] == pid else _open_gc_lock(S)
    for _ in range(2):
        try:
            _acquire(fd, fcntl.LOCK_SH, "the GC lock (a garbage collection is running)", timeout)
        except BaseException:
            _forget_fd(S.storage, fd)
            raise
        if os.fstat(fd).st_nlink > 0:
            _shared_fds[S.storage] = (pid, fd)
            return fd
        # The lock file was replaced: lock the one in place now.
        fcntl.flock(fd, fcntl.LOCK_UN)
        _forget_fd(S.storage, fd)
        fd = _open_gc_lock(S)
    _shared_fds[S.storage] = (pid, fd)
    return fd


def _forget_fd(storage: str, fd: int) -> None:
    if _shared_fds.get(storage, (0, -1))[1] == fd:
        del _shared_fds[storage]
    os.close(fd)


@contextlib.contextmanager
def gc_exclusive(S: StorageSettings, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the GC lock exclusively: no process registers temporary roots meanwhile.

    The collector holds it for short sections (one bounded batch each).

    Re-entrant within the thread that holds it, and a :func:`gc_shared` in that
    thread passes at once.

    Another thread of this process holding it shared is waited for like
    another process (shared sections are short).

    Raises:
        LockError: this thread itself holds the lock in shared mode (waiting
            would deadlock); or ``timeout`` seconds passed.
    """
    me = threading.get_ident()
    if _exclusive_owner.get(S.storage) == me:
        yield  # re-entrant within the collecting thread
        return
    with _shared_lock:
        if (S.storage, me) in _shared_threads:
            raise LockError(
                f"cannot take the GC lock of {S.storage!r} exclusively: this thread holds "
                "it in shared mode (inside gc_shared), so waiting would deadlock; collect "
                "garbage outside of gc_shared blocks",
                path=S.storage,
            )
    fd = _open_gc_lock(S)
    try:
        _acquire(
            fd, fcntl.LOCK_EX, "the GC lock (a process is registering temporary roots)", timeout
        )
        # Processes waiting for a batch log this text when they wait long.
        _note_holder(fd)
        _exclusive_owner[S.storage] = me
        try:
            yield
        finally:
            del _exclusive_owner[S.storage]
    finally:
        os.close(fd)


def store_writable(S: StorageSettings) -> bool:
    """Whether this process may change the store (not a read-only mount, not another user's)."""
    return os.access(S.storage, os.W_OK) and os.access(os.path.join(S.storage, LOCKS_DIR), os.W_OK)


@contextlib.contextmanager
def gc_collector(S: StorageSettings, *, timeout: float | None = None) -> Iterator[bool]:
    """Hold the collector lock: one garbage collection of the store at a time.

    Yields whether the lock is held: on a store this process cannot write
    (read-only mount, another user's store) it yields ``False`` without
    locking, since such a process can only report (a dry run).

    Raises:
        LockError: another collection ran for more than ``timeout`` seconds.
    """
    if not store_writable(S):
        yield False
        return
    fd = _open_lockfile(os.path.join(S.storage, LOCKS_DIR, COLLECTOR_LOCK))
    try:
        _acquire(fd, fcntl.LOCK_EX, "the collector lock (another garbage collection)", timeout)
        _note_holder(fd)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

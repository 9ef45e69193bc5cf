"""Kernel locks (``fcntl.flock``) that die with their holder.

* a **build lock** per derivation: one build of a derivation at a time;
* the store-wide **GC lock**: shared by every instantiate/realize while it
  runs, exclusive for the garbage collector. A *turnstile* lock in front of
  it stops new shared holders while a collector waits, so the collector is
  not starved by a stream of overlapping realizes.

Locks held by a process are re-entrant within it for the GC lock (a realize
nested inside a realizer must not deadlock against a waiting collector).
Waiters log who holds the lock (pid, host, since when) when they wait long.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

from pylightnix.errors import LockError
from pylightnix.refs import dref_dirname
from pylightnix.store.layout import LOCKS_DIR
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef

log = logging.getLogger("pylightnix.locks")

WAIT_LOG_AFTER = 5.0
"""Seconds of waiting after which a waiter logs who holds the lock."""


def _holder_text() -> bytes:
    return (
        f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n".encode()
    )


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
    fd = _open_lockfile(path)
    try:
        _acquire(fd, fcntl.LOCK_EX, f"build lock on {dref}", timeout)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_text(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_shared_lock = threading.Lock()
_shared_count: dict[str, tuple[int, int]] = {}  # storage -> (fd, holders in this process)
_exclusive_owner: dict[str, int] = {}  # storage -> the thread holding gc_exclusive


@contextlib.contextmanager
def gc_shared(S: StorageSettings, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the store-wide GC lock in shared mode (re-entrant within the process).

    Raises:
        LockError: a garbage collection held the lock for more than ``timeout`` seconds.
    """
    key = S.storage
    if _exclusive_owner.get(key) == threading.get_ident():
        # This thread collects (e.g. a removal under gc_exclusive calls a query
        # that protects itself): exclusive already includes shared.
        yield
        return
    with _shared_lock:
        ent = _shared_count.get(key)
        if ent is not None:
            _shared_count[key] = (ent[0], ent[1] + 1)
        else:
            _shared_count[key] = (_take_shared(S, timeout), 1)
    try:
        yield
    finally:
        with _shared_lock:
            fd, n = _shared_count[key]
            if n == 1:
                del _shared_count[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                _shared_count[key] = (fd, n - 1)


def _take_shared(S: StorageSettings, timeout: float | None) -> int:
    tfd = _open_lockfile(os.path.join(S.storage, LOCKS_DIR, "gc.turnstile"))
    try:
        _acquire(tfd, fcntl.LOCK_SH, "the GC turnstile (a garbage collection is running)", timeout)
        fd = _open_lockfile(os.path.join(S.storage, LOCKS_DIR, "gc.lock"))
        try:
            _acquire(fd, fcntl.LOCK_SH, "the GC lock (a garbage collection is running)", timeout)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(tfd)  # closing drops the turnstile lock
    return fd


@contextlib.contextmanager
def gc_exclusive(S: StorageSettings, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the GC lock exclusively: no instantiate or realize runs meanwhile.

    Re-entrant within the thread that holds it, and a :func:`gc_shared` in that
    thread passes at once.

    Raises:
        LockError: this process itself holds the lock in shared mode (a realize
            or instantiate runs in it, maybe in another thread): waiting would
            deadlock; or ``timeout`` seconds passed.
    """
    me = threading.get_ident()
    if _exclusive_owner.get(S.storage) == me:
        yield  # re-entrant within the collecting thread
        return
    with _shared_lock:
        if S.storage in _shared_count:
            raise LockError(
                f"cannot take the GC lock of {S.storage!r} exclusively: this process holds "
                "it in shared mode (a realize or instantiate is running in it), so waiting "
                "would deadlock; collect garbage outside of realize/instantiate",
                path=S.storage,
            )
    tfd = _open_lockfile(os.path.join(S.storage, LOCKS_DIR, "gc.turnstile"))
    fd = _open_lockfile(os.path.join(S.storage, LOCKS_DIR, "gc.lock"))
    try:
        _acquire(tfd, fcntl.LOCK_EX, "the GC turnstile", timeout)
        # Realizes queued on the turnstile log this text when they wait long.
        os.ftruncate(tfd, 0)
        os.pwrite(tfd, _holder_text(), 0)
        _acquire(fd, fcntl.LOCK_EX, "the GC lock (realizations are running)", timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text(), 0)
        _exclusive_owner[S.storage] = me
        try:
            yield
        finally:
            del _exclusive_owner[S.storage]
    finally:
        os.close(fd)
        os.close(tfd)

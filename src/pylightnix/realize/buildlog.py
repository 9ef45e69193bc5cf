"""Build logs: what a realizer prints is kept next to its realization.

While a realizer runs, its output goes to a log file in the build's private
temporary folder; :func:`store_realization` copies that file into the
realization's reserved folder as ``__pylightnix__/build.log`` (outside the
content hash) and :func:`rreflog` reads it back. A build that printed nothing
gets no ``build.log``: every reader takes a missing log for an empty one.

Two capture modes, chosen by the engine:

* **fd-level** (builds run one at a time, ``jobs=1`` without an executor):
  file descriptors 1 and 2 are redirected into the log with ``os.dup2``, so
  the output of subprocesses and C extensions is captured too. Redirecting
  descriptors is process-global, so one process holds at most one such
  capture at a time (a lock; a second concurrent capture in the same process,
  e.g. from another thread calling ``realize``, falls back to Python-level).
* **Python-level** (``jobs>1``: builds run in threads at once):
  ``sys.stdout``/``sys.stderr`` are replaced by proxies that send each
  thread's writes to the log of the build that thread runs (a context
  variable). Subprocesses inherit the real descriptors, so their output is
  not captured in this mode (pass ``stdout=``/``stderr=`` explicitly, or
  build with ``jobs=1``).

Builds on executors (``realize/tasks.py``) capture at the fd level in a
worker process that runs one task at a time (a process pool's process, a
single-threaded Dask worker), and Python-level otherwise.

With ``tee=True`` the output is also shown live on the original stream.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

from pylightnix.store.layout import LOG_FILE, RESERVED
from pylightnix.store.query import read_nofollow, rref2path
from pylightnix.store.settings import StorageSettings
from pylightnix.types import RRef

TMP_LOG_NAME = "__pylightnix_build.log"
"""Name of the log file inside a build's private temporary folder."""

TAIL_LINES = 20
"""How many last lines of a failed build's log go into the error's notes."""

SHOW_LOG_ENV = "PYLIGHTNIX_SHOW_LOG"
"""Environment variable: ``1`` shows build output live (like ``show_log=True``)."""

# A pump thread still attached to a pipe that a leftover background process
# keeps open is abandoned after this many seconds (the build must not hang).
_PUMP_JOIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Capture:
    """Where the writes of one running build go."""

    fd: int
    tee: TextIO | None


_CAPTURE: ContextVar[_Capture | None] = ContextVar("pylightnix_build_log", default=None)
_FD_LOCK = threading.Lock()
_PROXY_LOCK = threading.Lock()
_PROXY_USERS = [0]
_PROXY_ORIG: list[Any] = [None, None]


class _StreamProxy(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: writes of a capturing context
    go to its log, every other write to the original stream."""

    def __init__(self, orig: TextIO) -> None:
        super().__init__()
        self._orig = orig

    def write(self, s: str) -> int:
        cap = _CAPTURE.get()
        if cap is None:
            return self._orig.write(s)
        data = s.encode("utf-8", "replace")
        _write_all(cap.fd, data)
        if cap.tee is not None:
            cap.tee.write(s)
            cap.tee.flush()
        return len(s)

    def flush(self) -> None:
        if _CAPTURE.get() is None:
            self._orig.flush()

    def isatty(self) -> bool:
        return _CAPTURE.get() is None and self._orig.isatty()

    def fileno(self) -> int:
        return self._orig.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._orig, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orig, name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


_HOLD: ContextVar[list[bool] | None] = ContextVar("pylightnix_hold_proxies", default=None)


def _install_proxies() -> None:
    with _PROXY_LOCK:
        n = 1
        hold = _HOLD.get()
        if hold is not None and not hold[0]:
            hold[0] = True  # one more user: the enclosing keep_proxies block
            n = 2
        if _PROXY_USERS[0] == 0:
            _PROXY_ORIG[0], _PROXY_ORIG[1] = sys.stdout, sys.stderr
            sys.stdout = _StreamProxy(sys.stdout)
            sys.stderr = _StreamProxy(sys.stderr)
        _PROXY_USERS[0] += n


@contextlib.contextmanager
def keep_proxies() -> Iterator[None]:
    """Within the block, the stream proxies that the first capture installs stay
    installed until the block ends: one install per realize, not one per build
    (making and dropping the proxies was a visible part of a trivial build)."""
    hold = [False]
    tok = _HOLD.set(hold)
    try:
        yield
    finally:
        _HOLD.reset(tok)
        if hold[0]:
            _uninstall_proxies()


def _uninstall_proxies() -> None:
    with _PROXY_LOCK:
        _PROXY_USERS[0] -= 1
        if _PROXY_USERS[0] == 0:
            # Someone (a test harness) may have swapped the streams meanwhile: keep theirs.
            if isinstance(sys.stdout, _StreamProxy):
                sys.stdout = _PROXY_ORIG[0]
            if isinstance(sys.stderr, _StreamProxy):
                sys.stderr = _PROXY_ORIG[1]
            _PROXY_ORIG[0] = _PROXY_ORIG[1] = None


def _flush_std() -> None:
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if s is not None:
            try:
                s.flush()
            except (OSError, ValueError):
                pass


def _dup_std() -> tuple[int, int] | None:
    """Duplicates of fds 1 and 2, or ``None`` when either is closed."""
    try:
        one = os.dup(1)
    except OSError:
        return None
    try:
        return one, os.dup(2)
    except OSError:
        os.close(one)
        return None


def _pump(r: int, logfd: int, term: int) -> None:
    """Copy a pipe to the log and the terminal until every writer closed it."""
    try:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                return
            _write_all(logfd, chunk)
            try:
                _write_all(term, chunk)
            except OSError:
                pass  # the terminal went away; the log still gets everything
    finally:
        for fd in (r, logfd, term):
            os.close(fd)


@contextlib.contextmanager
def capture_build_log(path: str, *, tee: bool = False, fd_level: bool = True) -> Iterator[str]:
    """Within the block, send this build's stdout/stderr to the file ``path``.

    Args:
        path: the log file (created, or appended to).
        tee: also show the output live on the original stdout.
        fd_level: redirect file descriptors 1 and 2 (captures subprocesses)
            when no other fd-level capture runs in this process; otherwise
            capture Python-level writes of this context only.

    Yields:
        the mode used: ``"fd"`` or ``"python"``.
    """
    logfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    use_fd = fd_level and _FD_LOCK.acquire(blocking=False)
    saved: tuple[int, int] | None = None
    pump: threading.Thread | None = None
    wfd = -1
    target = logfd
    if use_fd:
        saved = _dup_std()
        if saved is None:
            # A process started without stdout/stderr (a daemon): capture what Python writes.
            _FD_LOCK.release()
            use_fd = False
    try:
        if saved is not None:
            _flush_std()
            if tee:
                r, wfd = os.pipe()
                pump = threading.Thread(
                    target=_pump,
                    args=(r, os.dup(logfd), os.dup(saved[0])),
                    name="pylightnix-log-tee",
                    daemon=True,
                )
                pump.start()
                target = wfd
            os.dup2(target, 1)
            os.dup2(target, 2)
        _install_proxies()
        # Tee to the original stream, never to a proxy (that would loop back here).
        cap = _Capture(target, _PROXY_ORIG[0] if tee and not use_fd else None)
        tok = _CAPTURE.set(cap)
        try:
            yield "fd" if use_fd else "python"
        finally:
            _CAPTURE.reset(tok)
            _uninstall_proxies()
    finally:
        if saved is not None:
            _flush_std()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        if wfd >= 0:
            os.close(wfd)
        if pump is not None:
            pump.join(_PUMP_JOIN_TIMEOUT)
        if use_fd:
            _FD_LOCK.release()
        os.close(logfd)


def log_tail(path: str, n: int = TAIL_LINES) -> list[str]:
    """The last ``n`` lines of a log file (``[]`` if it is missing or empty)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:]


def add_log_note(exc: BaseException, path: str, n: int = TAIL_LINES) -> None:
    """Add the last lines of the failed build's log to ``exc`` as a note."""
    tail = log_tail(path, n)
    if tail:
        body = "\n".join("  | " + line for line in tail)
        exc.add_note(f"last {len(tail)} lines of the build log:\n{body}")


def show_log_default() -> bool:
    """Whether ``$PYLIGHTNIX_SHOW_LOG`` asks to show build output live."""
    return os.environ.get(SHOW_LOG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def rreflog_path(rref: RRef, S: StorageSettings | None = None) -> str:
    """Path of the build log of a stored realization (whether or not it exists)."""
    return os.path.join(rref2path(rref, S), RESERVED, LOG_FILE)


def rreflog(rref: RRef, S: StorageSettings | None = None) -> str:
    """The captured output (stdout and stderr) of the build that made ``rref``.

    A build that printed nothing leaves no ``build.log`` (one file less per
    realization), so a missing log reads as empty, like an empty one.

    Args:
        rref: a stored realization.
        S: the store (default: the current one).

    Returns:
        the log text (invalid UTF-8 replaced); ``""`` when the realization has no log.

    Raises:
        RefError: ``rref`` is malformed or not in the store.
    """
    p = rreflog_path(rref, S)
    try:
        # Never through a symlink: reading the store must not leave it.
        return read_nofollow(p).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def rreflog_tail(rref: RRef, S: StorageSettings | None = None, n: int = TAIL_LINES) -> list[str]:
    """The last ``n`` lines of a realization's build log (``[]`` when it has none)."""
    return log_tail(rreflog_path(rref, S), n)


def flush_build_output() -> None:
    """Flush Python's standard streams, so that a build's log file holds what it printed so far."""
    _flush_std()

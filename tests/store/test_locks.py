"""Basic tests of store/locks.py: build locks exclude other processes, GC lock modes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import socket
import threading
from typing import Any

import pytest

from pylightnix import StorageSettings, gc
from pylightnix.errors import LockError
from pylightnix.store import locks
from pylightnix.store.locks import _shared_count, build_lock, gc_exclusive, gc_shared
from pylightnix.types import DRef

D = DRef("dref:" + "a" * 32 + "-locked")


def _hold_build_lock(S: StorageSettings, held: Any, release: Any) -> None:
    with build_lock(S, D):
        held.set()
        release.wait(60)


def _hold_gc_shared(S: StorageSettings, held: Any, release: Any) -> None:
    with gc_shared(S):
        held.set()
        release.wait(60)


def _in_other_process(S: StorageSettings, target: Any) -> tuple[Any, Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=target, args=(S, held, release))
    p.start()
    assert held.wait(60)
    return p, release, p.pid


def test_build_lock_held_by_another_process_blocks_and_names_it(S: StorageSettings) -> None:
    """While another process holds a build lock, taking it times out naming the holder."""
    p, release, pid = _in_other_process(S, _hold_build_lock)
    try:
        with pytest.raises(LockError) as ei, build_lock(S, D, timeout=0.2):
            pass
        msg = str(ei.value)
        assert msg.startswith(
            f"timed out after 0s waiting for build lock on {D} held by pid {pid} "
        )
        assert f" on {socket.gethostname()} since " in msg
    finally:
        release.set()
        p.join(60)
    assert p.exitcode == 0
    with build_lock(S, D, timeout=5):
        pass


def test_build_locks_of_different_derivations_are_independent(S: StorageSettings) -> None:
    """Holding one derivation's lock does not block another's."""
    p, release, _ = _in_other_process(S, _hold_build_lock)
    try:
        with build_lock(S, DRef("dref:" + "b" * 32 + "-other"), timeout=0.5):
            pass
    finally:
        release.set()
        p.join(60)


def test_gc_exclusive_waits_for_shared_holders_in_other_processes(S: StorageSettings) -> None:
    """A process in a shared section (registering temp roots) keeps the collector out."""
    p, release, _ = _in_other_process(S, _hold_gc_shared)
    try:
        with pytest.raises(LockError) as ei, gc_exclusive(S, timeout=0.2):
            pass
        assert "waiting for the GC lock (a process is registering temporary roots)" in str(ei.value)
    finally:
        release.set()
        p.join(60)
    with gc_exclusive(S, timeout=5):
        pass


def test_gc_shared_is_reentrant_and_refuses_exclusive_inside(S: StorageSettings) -> None:
    """Nested shared holds share one lock; an exclusive request in the same thread: refused."""
    with gc_shared(S), gc_shared(S):
        assert _shared_count[S.storage][1] == 2
        with pytest.raises(LockError) as ei, gc_exclusive(S):
            pass
        assert str(ei.value) == (
            f"cannot take the GC lock of {S.storage!r} exclusively: this thread holds "
            "it in shared mode (inside gc_shared), so waiting would deadlock; collect "
            "garbage outside of gc_shared blocks"
        )
    assert S.storage not in _shared_count
    with gc_exclusive(S, timeout=5):
        pass


def test_lock_files_live_in_the_locks_folder(S: StorageSettings) -> None:
    """Build locks are files named after the derivation in <storage>/.locks."""
    with build_lock(S, D):
        pass
    assert f"{'a' * 32}-locked.lock" in os.listdir(os.path.join(S.storage, ".locks"))


def _hold_gc_exclusive(S: StorageSettings, held: Any, release: Any) -> None:
    with gc_exclusive(S):
        held.set()
        release.wait(60)


_SINCE = r"since \d\d:\d\d:\d\d"


def test_a_long_wait_logs_who_holds_the_build_lock(
    S: StorageSettings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After WAIT_LOG_AFTER seconds a waiter logs the holder's pid, host and start time once."""
    p, release, pid = _in_other_process(S, _hold_build_lock)
    monkeypatch.setattr(locks, "WAIT_LOG_AFTER", 0.0)
    try:
        with (
            caplog.at_level(logging.WARNING, "pylightnix.locks"),
            pytest.raises(LockError),
            build_lock(S, D, timeout=0.3),
        ):
            pass
    finally:
        release.set()
        p.join(60)
    host = re.escape(socket.gethostname())
    assert len(caplog.records) == 1
    assert re.fullmatch(
        rf"waiting for build lock on {D} held by pid {pid} on {host} {_SINCE}", caplog.messages[0]
    )


def test_a_build_lock_dies_with_its_killed_holder(S: StorageSettings) -> None:
    """SIGKILL of the holder frees the lock at once: no stale 'lock file exists' state."""
    p, _, pid = _in_other_process(S, _hold_build_lock)
    os.kill(pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    with build_lock(S, D, timeout=5):
        pass


def test_a_blocked_waiter_proceeds_when_the_holder_releases(S: StorageSettings) -> None:
    """A waiter without timeout gets the lock as soon as the other process lets go."""
    p, release, _ = _in_other_process(S, _hold_build_lock)
    got = threading.Event()

    def wait() -> None:
        with build_lock(S, D):
            got.set()

    t = threading.Thread(target=wait)
    t.start()
    try:
        assert not got.is_set()
    finally:
        release.set()
        t.join(60)
        p.join(60)
    assert got.is_set()


def test_a_realize_waits_while_another_process_collects(S: StorageSettings) -> None:
    """Taking the GC lock shared blocks while another process holds it exclusively."""
    p, release, pid = _in_other_process(S, _hold_gc_exclusive)
    try:
        with pytest.raises(LockError) as ei, gc_shared(S, timeout=0.2):
            pass
        assert str(ei.value).startswith("timed out after 0s waiting for the GC")
        assert f"held by pid {pid} on " in str(ei.value)
    finally:
        release.set()
        p.join(60)
    with gc_shared(S):
        pass


def test_gc_from_another_thread_waits_for_a_shared_section_then_runs(
    S: StorageSettings,
) -> None:
    """Another thread's shared section is waited for like another process's, not refused."""
    inside, done = threading.Event(), threading.Event()

    def register_like() -> None:
        with gc_shared(S):
            inside.set()
            done.wait(60)

    t = threading.Thread(target=register_like)
    t.start()
    assert inside.wait(60)
    try:
        with pytest.raises(LockError) as ei, gc_exclusive(S, timeout=0.2):
            pass
        assert str(ei.value).startswith(
            "timed out after 0s waiting for the GC lock (a process is registering temporary "
            "roots) held by"
        )
    finally:
        done.set()
        t.join(60)
    assert gc(S).deleted_rrefs == ()


def test_the_collecting_thread_may_take_the_lock_again(S: StorageSettings) -> None:
    """Inside gc_exclusive, the same thread's gc_shared and gc_exclusive pass at once."""
    with gc_exclusive(S, timeout=5), gc_shared(S, timeout=0.2), gc_exclusive(S, timeout=0.2):
        assert S.storage not in _shared_count


def test_another_thread_waits_for_an_in_process_collector(S: StorageSettings) -> None:
    """A realize in another thread of the collecting process waits for the collection."""
    errors: list[str] = []

    def other() -> None:
        try:
            with gc_shared(S, timeout=0.2):
                pass
        except LockError as e:
            errors.append(str(e))

    with gc_exclusive(S, timeout=5):
        t = threading.Thread(target=other)
        t.start()
        t.join(60)
    assert len(errors) == 1
    assert errors[0].startswith(
        "timed out after 0s waiting for the GC lock (a garbage collection is running) held by "
        f"pid {os.getpid()} on "
    )
    other()
    assert len(errors) == 1


class _Signal(logging.Handler):
    """A log handler that lets a test wait for the first record."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.got = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.got.set()


def test_a_waiter_without_timeout_blocks_logs_the_holder_and_proceeds(
    S: StorageSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blocking wait logs who holds the lock, then gets it when the holder releases."""
    p, release, pid = _in_other_process(S, _hold_build_lock)
    monkeypatch.setattr(locks, "WAIT_LOG_AFTER", 0.0)
    sig = _Signal()
    logger = logging.getLogger("pylightnix.locks")
    logger.addHandler(sig)
    got = threading.Event()

    def wait() -> None:
        with build_lock(S, D):
            got.set()

    t = threading.Thread(target=wait)
    try:
        t.start()
        assert sig.got.wait(60)
        assert not got.is_set()
    finally:
        release.set()
        t.join(60)
        p.join(60)
        logger.removeHandler(sig)
    assert got.is_set()
    host = re.escape(socket.gethostname())
    assert len(sig.messages) == 1
    assert re.fullmatch(
        rf"waiting for build lock on {D} held by pid {pid} on {host} {_SINCE}", sig.messages[0]
    )


def test_the_kept_shared_descriptor_follows_a_replaced_lock_file(S: StorageSettings) -> None:
    """gc_shared keeps its descriptor between holds; once the lock file is replaced (the
    store made again), it locks the new file, so a collector holding that one still
    excludes it."""
    with gc_shared(S):
        pass
    path = os.path.join(S.storage, ".locks", "gc.lock")
    os.unlink(path)  # what removing and initializing the store again does to the lock
    p, release, _ = _in_other_process(S, _hold_gc_exclusive)
    try:
        with pytest.raises(LockError), gc_shared(S, timeout=0.2):
            pass
    finally:
        release.set()
        p.join(60)
    assert p.exitcode == 0
    with gc_shared(S, timeout=5):
        pass


def _fork_child_holds_and_drops(S: StorageSettings, go: int, done: int) -> None:
    os.read(go, 1)
    with gc_shared(S):
        pass
    os.write(done, b"x")
    os._exit(0)


def _try_exclusive(S: StorageSettings, held: Any, release: Any) -> None:
    """Exit 3 when gc_exclusive times out (the lock is held shared elsewhere), 0 when taken."""
    held.set()
    try:
        with gc_exclusive(S, timeout=0.3):
            pass
    except LockError:
        os._exit(3)
    os._exit(0)


def test_a_forked_child_never_drops_the_parents_shared_hold(S: StorageSettings) -> None:
    """A child forked after the parent kept its descriptor takes and drops its own hold
    while the parent holds the lock; the parent's hold stays, so a collector in another
    process still cannot take the lock."""
    with gc_shared(S):
        pass  # the descriptor is now kept open
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _fork_child_holds_and_drops(S, go_r, done_w)
    try:
        with gc_shared(S):
            os.write(go_w, b"g")
            assert os.read(done_r, 1) == b"x"
            p, _, _ = _in_other_process(S, _try_exclusive)
            p.join(60)
            assert p.exitcode == 3
    finally:
        os.waitpid(pid, 0)
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)
    p, _, _ = _in_other_process(S, _try_exclusive)
    p.join(60)
    assert p.exitcode == 0

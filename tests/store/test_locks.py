"""Basic tests of store/locks.py: build locks exclude other processes, GC lock modes."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Any

import pytest

from pylightnix import StorageSettings
from pylightnix.errors import LockError
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
    """A realize (shared GC lock) in another process keeps the collector out."""
    p, release, _ = _in_other_process(S, _hold_gc_shared)
    try:
        with pytest.raises(LockError) as ei, gc_exclusive(S, timeout=0.2):
            pass
        assert "waiting for the GC lock (realizations are running)" in str(ei.value)
    finally:
        release.set()
        p.join(60)
    with gc_exclusive(S, timeout=5):
        pass


def test_gc_shared_is_reentrant_and_refuses_exclusive_inside(S: StorageSettings) -> None:
    """Nested shared holds share one lock; an exclusive request inside would deadlock: refused."""
    with gc_shared(S), gc_shared(S):
        assert _shared_count[S.storage][1] == 2
        with pytest.raises(LockError) as ei, gc_exclusive(S):
            pass
        assert str(ei.value).startswith(
            f"cannot take the GC lock of {S.storage!r} exclusively: this process holds "
            "it in shared mode"
        )
    assert S.storage not in _shared_count
    with gc_exclusive(S, timeout=5):
        pass


def test_lock_files_live_in_the_locks_folder(S: StorageSettings) -> None:
    """Build locks are files named after the derivation in <storage>/.locks."""
    with build_lock(S, D):
        pass
    assert f"{'a' * 32}-locked.lock" in os.listdir(os.path.join(S.storage, ".locks"))

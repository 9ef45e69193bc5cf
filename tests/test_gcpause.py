"""Tests of gcpause.py: the cyclic collector is off for the library's walks over
closures, on for the user's builds, and as the caller had it afterwards."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    build_outpath,
    build_wrapper,
    instantiate,
    match_only,
    mkdrv,
    realize,
)
from pylightnix.gcpause import library_work, user_code

SEEN: list[tuple[str, bool]] = []


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    SEEN.clear()
    yield
    if not was:
        gc.disable()


def test_library_work_pauses_and_restores_and_user_code_resumes() -> None:
    """Nested blocks keep the collector off; user code inside runs with it on; the end of
    the outermost block turns it back on."""
    with library_work():
        assert not gc.isenabled()
        with library_work():
            assert not gc.isenabled()
            with user_code():
                assert gc.isenabled()
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    """If the caller turned the collector off, neither block turns it on."""
    gc.disable()
    with library_work(), user_code():
        assert not gc.isenabled()
    assert not gc.isenabled()


def _build(b: Build) -> None:
    SEEN.append(("build", gc.isenabled()))
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def _stage(r: object = None) -> object:
    SEEN.append(("stage", gc.isenabled()))
    return mkdrv({"name": "paused"}, match_only(), build_wrapper(_build), r)  # type: ignore[arg-type]


def test_instantiate_and_realize_pause_it_around_the_library_only(S: StorageSettings) -> None:
    """The stage function runs while instantiate has the collector off, the realizer with it
    on, and both calls leave it on."""
    _, clo = instantiate(_stage, S=S)
    assert gc.isenabled()
    realize(clo)
    assert gc.isenabled()
    assert SEEN == [("stage", False), ("build", True)]


class _Node:
    """A small object the collector tracks."""

    def __init__(self) -> None:
        self.other: object = None


def test_what_a_block_allocated_is_not_walked_by_a_young_collection_after_it() -> None:
    """After the outermost block, allocating a few objects starts no collection, however
    many the block allocated (they joined the oldest generation)."""
    kept: list[_Node] = []
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    try:
        with library_work():
            kept.extend(_Node() for _ in range(20 * gc.get_threshold()[0]))
            gc.callbacks.append(seen)  # no collection runs before the block ends
        more = [_Node() for _ in range(gc.get_threshold()[0] // 2)]
    finally:
        gc.callbacks.remove(seen)
    assert collections == []
    assert len(kept) + len(more) > 0


def test_a_cycle_made_in_a_block_is_found_by_the_next_full_collection() -> None:
    """A reference cycle left by a block is not lost: a full collection frees it."""
    with library_work():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
    assert gone() is not None
    gc.collect()
    assert gone() is None


def test_objects_the_caller_froze_stay_frozen() -> None:
    """A caller's gc.freeze() survives a block: its objects stay in the permanent generation
    (out of every collection's reach), and the block's own objects do not join them.

    Checked by identity, not by gc.get_freeze_count(): another thread of the test process
    may free a frozen object meanwhile, which lowers the count by one."""
    before = _Node()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with library_work():
            kept = [_Node() for _ in range(1000)]
        collectable = {id(o) for o in gc.get_objects()}
        assert id(before) not in collectable, "the caller's frozen object was released"
        assert all(id(k) in collectable for k in kept), "the block's objects were frozen"
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()

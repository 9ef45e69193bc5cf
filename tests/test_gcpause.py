"""Tests of gcpause.py: the cyclic collector is off for the library's walks over
closures, on for the user's builds, and as the caller had it afterwards."""

from __future__ import annotations

import gc
import os
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

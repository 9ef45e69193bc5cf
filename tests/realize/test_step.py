"""realize/step.py: matches become temporary roots, at once or in one batch."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    build_outpath,
    build_wrapper,
    instantiate,
    match_only,
    mkdrv,
    realize1,
    release_temproots,
    rmref,
)
from pylightnix.hashing import context_hash
from pylightnix.realize.step import (
    VanishedError,
    deferred_registration,
    immediate_registration,
    match_in,
)
from pylightnix.store.temproots import my_temproots
from pylightnix.types import DRef


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def _one(r: Any = None) -> DRef:
    return mkdrv({"name": "one"}, match_only(), build_wrapper(_write), r)


def test_a_match_is_registered_at_once_outside_a_batch(S: StorageSettings) -> None:
    """match_in registers what the matcher chose before returning it."""
    rref = realize1(instantiate(_one, S=S))
    release_temproots(S)
    _, clo = instantiate(_one, S=S)
    with immediate_registration():
        assert match_in(clo.derivations[0], S, context_hash({})) == [rref]
    assert rref in my_temproots(S)


def test_a_batch_registers_at_its_end_and_notices_a_deleted_choice(S: StorageSettings) -> None:
    """Inside deferred_registration the choice is registered when the block ends; one
    deleted before that raises VanishedError (the scheduler then realizes again)."""
    rref = realize1(instantiate(_one, S=S))
    release_temproots(S)
    _, clo = instantiate(_one, S=S)
    drv = clo.derivations[0]
    with deferred_registration(S):
        assert match_in(drv, S, context_hash({})) == [rref]
        assert rref not in my_temproots(S)
    assert rref in my_temproots(S)
    release_temproots(S)
    with pytest.raises(VanishedError), deferred_registration(S):
        assert match_in(drv, S, context_hash({})) == [rref]
        rmref(rref, S)
    assert realize1(instantiate(_one, S=S)) == rref  # built again, same content

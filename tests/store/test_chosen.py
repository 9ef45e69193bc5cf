"""Tests of chosen records: realize writes down what each matcher picked, per context."""

from __future__ import annotations

import json
import os

from pylightnix import (
    Build,
    StorageSettings,
    build_wrapper,
    instantiate,
    match_best,
    mkdrv,
    realize,
    realizeMany,
)
from pylightnix.hashing import context_hash
from pylightnix.store.chosen import (
    ChosenRecord,
    chosen_in,
    chosen_path,
    chosen_records,
    record_chosen,
)
from pylightnix.types import DRef, RRef


def _two(b: Build) -> None:
    for i, o in enumerate(b.outpaths):
        with open(os.path.join(o, "acc.txt"), "w") as f:
            f.write(str(i))


def _stage(r: object = None) -> DRef:
    return mkdrv(
        {"name": "pick"},
        match_best("acc.txt"),
        build_wrapper(_two, nouts=2),
        r,  # type: ignore[arg-type]
    )


def test_realize_records_the_pick(S: StorageSettings) -> None:
    """After a realize, the record of the derivation's context names the matcher's pick."""
    (picked,) = realizeMany(instantiate(_stage, S=S))
    dref = DRef("dref:" + picked.split("-")[1] + "-pick")
    rec = chosen_in(S, dref, context_hash({}))
    assert rec is not None
    assert (rec.rrefs, rec.score_file) == ((picked,), "acc.txt")
    assert {context_hash({})[:32]: rec} == chosen_records(S, dref)


def test_noop_realize_does_not_rewrite(S: StorageSettings) -> None:
    """A realize whose matcher answers as recorded leaves the record file untouched."""
    clo = instantiate(_stage, S=S)
    realize(clo)
    p = chosen_path(S, clo[0], context_hash({}))
    before = os.stat(p).st_ino
    with open(p, "rb") as f:
        data = f.read()
    realize(clo)
    assert before == os.stat(p).st_ino
    with open(p, "rb") as f:
        assert data == f.read()


def test_changed_pick_is_rewritten(S: StorageSettings) -> None:
    """A different answer replaces the record; readers see it whole."""
    dref = DRef("dref:" + "1" * 32 + "-x")
    os.makedirs(os.path.join(S.storage, "1" * 32 + "-x"))
    a, b = (
        RRef("rref:" + "a" * 32 + "-" + "1" * 32 + "-x"),
        RRef("rref:" + "b" * 32 + "-" + "1" * 32 + "-x"),
    )
    record_chosen(S, dref, "c" * 64, [b, a])
    assert (a, b) == chosen_in(S, dref, "c" * 64).rrefs  # type: ignore[union-attr]
    record_chosen(S, dref, "c" * 64, [a], score_file="s.txt")
    got = chosen_in(S, dref, "c" * 64)
    assert got is not None
    assert ((a,), "s.txt") == (got.rrefs, got.score_file)
    with open(chosen_path(S, dref, "c" * 64)) as f:
        assert {"rrefs": [a], "score_file": "s.txt", "time": got.time} == json.load(f)
    assert [n for n in os.listdir(os.path.dirname(chosen_path(S, dref, "c"))) if ".tmp-" in n] == []


def test_unreadable_record_is_none(S: StorageSettings) -> None:
    """A missing or damaged record reads as no record."""
    dref = DRef("dref:" + "1" * 32 + "-x")
    assert chosen_in(S, dref, "c" * 64) is None
    os.makedirs(os.path.join(S.storage, "1" * 32 + "-x"))
    with open(chosen_path(S, dref, "c" * 64), "w") as f:
        f.write("{not json")
    assert chosen_in(S, dref, "c" * 64) is None
    assert chosen_records(S, dref) == {}
    assert ChosenRecord(()) == ChosenRecord((), None, 0.0)


def test_unwritable_record_is_skipped(S: StorageSettings) -> None:
    """A record that cannot be written (here: no derivation folder) is skipped without an error."""
    dref = DRef("dref:" + "2" * 32 + "-y")
    record_chosen(S, dref, "d" * 64, [])
    assert not os.path.exists(os.path.dirname(chosen_path(S, dref, "d" * 64)))

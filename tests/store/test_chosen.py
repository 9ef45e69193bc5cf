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
    _SEEN,
    ChosenRecord,
    chosen_in,
    chosen_records,
    record_chosen,
)
from pylightnix.store.index import forget_index
from pylightnix.types import DRef, RRef

DREF = DRef("dref:" + "1" * 32 + "-x")
A = RRef("rref:" + "a" * 32 + "-" + "1" * 32 + "-x")
B = RRef("rref:" + "b" * 32 + "-" + "1" * 32 + "-x")
CH = "c" * 64


def _two(b: Build) -> None:
    for i, o in enumerate(b.outpaths):
        with open(os.path.join(o, "acc.txt"), "w") as f:
            f.write(str(i))


def _stage(r: object = None) -> DRef:
    return mkdrv({"name": "pick"}, match_best("acc.txt"), build_wrapper(_two, nouts=2), r)  # type: ignore[arg-type]


def _lines(S: StorageSettings, dref: DRef) -> list[list[str]]:
    """The chosen-record lines of the derivation's index, split into their fields."""
    with open(os.path.join(S.storage, dref[5:], "index.tsv")) as f:
        return [x.split("\t") for x in f.read().splitlines() if x.startswith("C\t")]


def test_realize_records_the_pick(S: StorageSettings) -> None:
    """After a realize, the record of the derivation's context names the matcher's pick."""
    (picked,) = realizeMany(instantiate(_stage, S=S))
    dref = DRef("dref:" + picked.split("-")[1] + "-pick")
    rec = chosen_in(S, dref, context_hash({}))
    assert rec is not None
    assert (rec.rrefs, rec.score_file) == ((picked,), "acc.txt")
    assert {context_hash({})[:32]: rec} == chosen_records(S, dref)


def test_noop_realize_does_not_rewrite(S: StorageSettings) -> None:
    """A realize whose matcher answers as recorded appends nothing, also in a process that
    has not seen the record yet."""
    clo = instantiate(_stage, S=S)
    realize(clo)
    (line,) = _lines(S, clo[0])
    p = os.path.join(S.storage, clo[0][5:], "index.tsv")
    before = os.stat(p)
    _SEEN.clear()
    forget_index(S)
    realize(clo)
    assert (before.st_ino, before.st_size) == (os.stat(p).st_ino, os.stat(p).st_size)
    assert [line] == _lines(S, clo[0])


def test_changed_pick_replaces_the_record(S: StorageSettings) -> None:
    """A different answer gets a new record line, which readers take over the old one."""
    os.makedirs(os.path.join(S.storage, "1" * 32 + "-x"))
    record_chosen(S, DREF, CH, [B, A])
    got = chosen_in(S, DREF, CH)
    assert got is not None
    assert (got.rrefs, got.score_file) == ((A, B), None)
    record_chosen(S, DREF, CH, [A], score_file="s.txt")
    got = chosen_in(S, DREF, CH)
    assert got is not None
    assert (got.rrefs, got.score_file) == ((A,), "s.txt")
    first, second = _lines(S, DREF)
    assert second[:3] == ["C", "c" * 32, repr(got.time)]
    assert json.loads(second[3]) == {"rrefs": [A], "score_file": "s.txt"}
    assert json.loads(first[3]) == {"rrefs": [A, B]}
    record_chosen(S, DREF, "d" * 64, [B])
    assert len(_lines(S, DREF)) == 3  # another context keeps its own record
    assert chosen_records(S, DREF)["c" * 32].rrefs == (A,)
    assert chosen_records(S, DREF)["d" * 32].rrefs == (B,)


def test_two_records_of_a_context_read_as_the_later(S: StorageSettings) -> None:
    """Of two records of one context (left by racing writers), readers take the later line."""
    d = os.path.join(S.storage, "1" * 32 + "-x")
    os.makedirs(d)
    with open(os.path.join(d, "index.tsv"), "w") as f:
        for rr, t in ((A, 9.0), (B, 5.0)):
            f.write(f"C\t{'c' * 32}\t{t}\t{json.dumps({'rrefs': [rr]})}\n")
    assert chosen_in(S, DREF, CH) == ChosenRecord((B,), None, 5.0)


def test_unreadable_record_is_none(S: StorageSettings) -> None:
    """A missing or damaged record reads as no record."""
    assert chosen_in(S, DREF, CH) is None
    d = os.path.join(S.storage, "1" * 32 + "-x")
    os.makedirs(d)
    with open(os.path.join(d, "index.tsv"), "w") as f:
        f.write(f"C\t{'c' * 32}\t1.0\t{{not json\n")
    assert chosen_in(S, DREF, CH) is None
    assert chosen_records(S, DREF) == {}


def test_unwritable_record_is_skipped(S: StorageSettings) -> None:
    """A record that cannot be written (here: no derivation folder) is skipped without an error."""
    dref = DRef("dref:" + "2" * 32 + "-y")
    record_chosen(S, dref, "d" * 64, [])
    assert not os.path.exists(os.path.join(S.storage, "2" * 32 + "-y"))

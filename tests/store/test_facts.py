"""Tests of store/facts.py: build times and scores cached per derivation, read once ever."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pylightnix import (
    Build,
    RefError,
    StorageSettings,
    build_outpaths,
    build_wrapper,
    instantiate,
    match_all,
    match_best,
    match_latest,
    mkdrv,
    realize,
    store_reindex,
)
from pylightnix.refs import rref_hashes
from pylightnix.store.facts import FEW, bstarts, forget_facts, scores
from pylightnix.store.fsops import make_readonly, make_writable
from pylightnix.store.layout import FACTS_FILE
from pylightnix.store.query import drefrrefs, drefrrefs_chash, rrefbstart
from pylightnix.types import DRef, RRef


def _three(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "score.txt"), "w") as f:
            f.write(f"{[3, 9, 1, 4, 7, 2][i]}\n")


def _built(S: StorageSettings, n: int = 3) -> tuple[DRef, list[RRef]]:
    d, clo = instantiate(mkdrv, {"name": "f"}, match_all(), build_wrapper(_three, nouts=n), S=S)
    realize(clo)
    return d, drefrrefs(d, S)


def _facts(S: StorageSettings, d: DRef) -> list[list[str]]:
    with open(os.path.join(S.storage, d[5:], FACTS_FILE)) as f:
        return [line.split("\t") for line in f.read().splitlines()]


def _rewrite(path: str, text: str) -> None:
    """Change a file inside a read-only realization (as damage or a test would)."""
    folder = os.path.dirname(path)
    make_writable(folder)
    os.chmod(path, 0o644)
    with open(path, "w") as f:
        f.write(text)
    make_readonly(folder)


def _meta(S: StorageSettings, r: RRef) -> str:
    return os.path.join(S.storage, f"{r[38:]}", r[5:37], "__pylightnix__", "meta.json")


def test_build_times_are_read_once_and_appended(S: StorageSettings) -> None:
    """The first lookup appends one bstart line per realization; later ones come from the file."""
    d, rs = _built(S, 6)
    assert not os.path.exists(os.path.join(S.storage, d[5:], FACTS_FILE))
    times = bstarts(S, rs)
    expected = []
    for r in rs:
        with open(_meta(S, r)) as f:
            expected.append(json.load(f)["build_start"])
    assert times == expected
    assert _facts(S, d) == [[r[5:37], "bstart", repr(t)] for r, t in zip(rs, times, strict=True)]
    # meta.json now says otherwise: a new process (no memory) still answers from facts.tsv.
    _rewrite(_meta(S, rs[0]), json.dumps({"build_start": 1.0}))
    forget_facts(S)
    assert bstarts(S, rs) == times
    assert rrefbstart(rs[0], S) == times[0]


def test_few_build_times_make_no_file(S: StorageSettings) -> None:
    """Build times of up to FEW candidates are read from meta.json, neither made nor read."""
    d, rs = _built(S, FEW)
    real = bstarts(S, rs)
    assert len(real) == FEW
    path = os.path.join(S.storage, d[5:], FACTS_FILE)
    assert not os.path.exists(path)
    with open(path, "w") as f:
        f.writelines(f"{r[5:37]}\tbstart\t1.0\n" for r in rs)
    forget_facts(S)
    assert bstarts(S, rs) == real


def test_match_best_reads_each_score_once(S: StorageSettings) -> None:
    """match_best caches each candidate's score; a changed score file is seen after reindex."""
    d, rs = _built(S)
    best = match_best("score.txt")(S, rs)
    assert best is not None
    (top,) = best
    score_file = os.path.join(S.storage, d[5:], top[5:37], "score.txt")
    _rewrite(score_file, "0\n")
    forget_facts(S)
    assert match_best("score.txt")(S, rs) == [top]
    assert sorted(line[1] for line in _facts(S, d)) == ["score:score.txt"] * 3
    store_reindex(S)
    assert match_best("score.txt")(S, rs) != [top]
    assert sorted(scores(S, rs, "score.txt")) == [0.0, 1.0, 3.0]


def test_missing_score_file_is_cached_as_none(S: StorageSettings) -> None:
    """A realization without the score file is cached as '-' and left out of the ranking."""
    d, rs = _built(S)
    assert match_best("missing.txt")(S, rs) is None
    assert sorted(line[2] for line in _facts(S, d) if line[1] == "score:missing.txt") == ["-"] * 3
    forget_facts(S)
    assert scores(S, rs, "missing.txt") == [None, None, None]


def test_torn_and_malformed_lines_are_skipped_and_the_later_line_wins(S: StorageSettings) -> None:
    """A line without its newline, or not of the format, is ignored; the later of two lines wins."""
    d, rs = _built(S, 6)
    h = rs[0][5:37]
    path = os.path.join(S.storage, d[5:], FACTS_FILE)
    with open(path, "w") as f:
        f.write(f"{h}\tbstart\t5.0\n")
        f.write("garbage line\n")
        f.write(f"{h}\tbstart\tnot-a-number\n")
        f.write(f"{h}\tbstart\t7.0\n")
        f.write(f"{rs[1][5:37]}\tbstart\t9.0")  # torn: no newline
    forget_facts(S)
    got = bstarts(S, rs)
    assert got[0] == 7.0
    with open(_meta(S, rs[1])) as f:
        real = json.load(f)["build_start"]
    # The torn line was not taken: the fact was read from meta.json and appended again.
    assert got[1] == real
    assert _facts(S, d)[-1] == [rs[5][5:37], "bstart", repr(got[5])]


def test_unwritable_facts_file_costs_only_reads(S: StorageSettings) -> None:
    """When the facts file cannot be written (a read-only store), lookups read the realizations."""
    d, rs = _built(S, 6)
    path = os.path.join(S.storage, d[5:], FACTS_FILE)
    os.mkdir(path)  # even root cannot append to a folder
    try:
        first = bstarts(S, rs)
        forget_facts(S)
        assert bstarts(S, rs) == first
        assert os.listdir(path) == []
    finally:
        os.rmdir(path)


def test_build_time_of_a_missing_realization_is_a_ref_error(S: StorageSettings) -> None:
    """rrefbstart of a realization that is not stored raises RefError naming it and the store."""
    d, rs = _built(S)
    ghost = RRef(f"rref:{'0' * 32}{rs[0][37:]}")
    with pytest.raises(RefError) as ei:
        rrefbstart(ghost, S)
    assert str(ei.value) == f"{ghost} is not in the store at {S.storage!r}"
    assert not os.path.exists(os.path.join(S.storage, d[5:], FACTS_FILE))


def test_match_latest_ranks_from_the_cache(S: StorageSettings) -> None:
    """match_latest picks the realization with the latest cached build time."""
    d, rs = _built(S, 6)
    path = os.path.join(S.storage, d[5:], FACTS_FILE)
    times = (3.0, 9.0, 1.0, 4.0, 2.0, 5.0)
    with open(path, "w") as f:
        f.writelines(f"{r[5:37]}\tbstart\t{t}\n" for r, t in zip(rs, times, strict=True))
    forget_facts(S)
    assert match_latest(1)(S, rs) == [rs[1]]
    assert match_latest(2)(S, list(reversed(rs))) == [rs[1], rs[5]]


def test_many_candidates_skip_dangling_markers(S: StorageSettings) -> None:
    """With more markers than the stat-each limit, a marker without its realization is left out."""
    d, clo = instantiate(mkdrv, {"name": "m"}, match_all(), build_wrapper(_three, nouts=3), S=S)
    realize(clo)
    realize(clo, force_rebuild=True)
    rs = drefrrefs(d, S)
    idx = os.path.join(S.storage, d[5:], "by-context")
    (chash,) = os.listdir(idx)
    for c in "0123":
        os.close(os.open(os.path.join(idx, chash, c * 32), os.O_CREAT | os.O_WRONLY, 0o444))
    assert len(os.listdir(os.path.join(idx, chash))) > 4
    assert drefrrefs_chash(d, chash, S) == rs


def test_rref_hashes_needs_one_derivation() -> None:
    """rref_hashes gives the hash parts only when every RRef realizes the given DRef."""
    d = DRef(f"dref:{'2' * 32}-x")
    a, b = RRef(f"rref:{'1' * 32}-{'2' * 32}-x"), RRef(f"rref:{'3' * 32}-{'2' * 32}-x")
    assert rref_hashes([a, b], d) == ["1" * 32, "3" * 32]
    assert rref_hashes([a, RRef(f"rref:{'1' * 32}-{'2' * 32}-y")], d) is None
    assert rref_hashes([RRef(f"rref:{'G' * 32}-{'2' * 32}-x")], d) is None
    assert rref_hashes([], d) == []


def test_facts_file_is_not_read_only(S: StorageSettings) -> None:
    """facts.tsv stays appendable (mode 0644) after a reindex rewrites it."""
    d, rs = _built(S, 6)
    bstarts(S, rs)
    store_reindex(S)
    mode = stat.S_IMODE(os.stat(os.path.join(S.storage, d[5:], FACTS_FILE)).st_mode)
    assert mode == 0o644
    assert [line[1] for line in _facts(S, d)] == ["bstart"] * 6

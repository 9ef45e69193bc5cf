"""Tests of store/facts.py: build times and scores from the derivation's index, read once ever."""

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
from pylightnix.store.facts import bstarts, forget_facts, scores
from pylightnix.store.fsops import make_readonly, make_writable
from pylightnix.store.layout import INDEX_FILE
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


def _facts(S: StorageSettings, d: DRef, kind: str = "S") -> list[list[str]]:
    """The fields after the kind of the index lines of one kind."""
    with open(os.path.join(S.storage, d[5:], INDEX_FILE)) as f:
        lines = [line.split("\t") for line in f.read().splitlines()]
    return [line[1:] for line in lines if line[0] == kind]


def _index(S: StorageSettings, d: DRef) -> str:
    return os.path.join(S.storage, d[5:], INDEX_FILE)


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


def test_build_times_come_from_the_index(S: StorageSettings) -> None:
    """Each realization's line carries its build time; a new process answers from the index."""
    d, rs = _built(S, 6)
    times = bstarts(S, rs)
    expected = []
    for r in rs:
        with open(_meta(S, r)) as f:
            expected.append(json.load(f)["build_start"])
    assert times == expected
    chash = _facts(S, d, "R")[0][1]
    assert sorted(_facts(S, d, "R")) == sorted(
        [r[5:37], chash, repr(t)] for r, t in zip(rs, times, strict=True)
    )
    # meta.json now says otherwise: a new process (no memory) still answers from the index.
    _rewrite(_meta(S, rs[0]), json.dumps({"build_start": 1.0}))
    forget_facts(S)
    assert bstarts(S, rs) == times
    assert rrefbstart(rs[0], S) == times[0]


def test_build_time_without_a_line_is_read_from_meta(S: StorageSettings) -> None:
    """A realization the index does not name has its build time read from meta.json,
    and no line is made for it (the index names realizations per context)."""
    d, rs = _built(S, 3)
    real = bstarts(S, rs)
    os.unlink(_index(S, d))
    forget_facts(S)
    assert bstarts(S, rs) == real
    assert not os.path.exists(_index(S, d))


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
    assert sorted(line[1] for line in _facts(S, d)) == ["score.txt"] * 3
    store_reindex(S)
    assert match_best("score.txt")(S, rs) != [top]
    assert sorted(scores(S, rs, "score.txt")) == [0.0, 1.0, 3.0]


def test_missing_score_file_is_cached_as_none(S: StorageSettings) -> None:
    """A realization without the score file is cached as '-' and left out of the ranking."""
    d, rs = _built(S)
    assert match_best("missing.txt")(S, rs) is None
    assert sorted(line[2] for line in _facts(S, d) if line[1] == "missing.txt") == ["-"] * 3
    forget_facts(S)
    assert scores(S, rs, "missing.txt") == [None, None, None]


def test_torn_and_malformed_lines_are_skipped_and_the_later_line_wins(S: StorageSettings) -> None:
    """A line without its newline, or not of the format, is ignored; the later of two lines wins."""
    d, rs = _built(S, 6)
    h = rs[0][5:37]
    with open(_index(S, d)) as f:
        good = f.read()
    with open(_index(S, d), "w") as f:
        f.write(good)
        f.write(f"S\t{h}\tscore.txt\t5.0\n")
        f.write("garbage line\n")
        f.write(f"S\t{h}\tscore.txt\tnot-a-number\n")
        f.write(f"S\t{h}\tscore.txt\t7.0\n")
        f.write(f"S\t{rs[1][5:37]}\tscore.txt\t100.0")  # torn: no newline
    forget_facts(S)
    got = scores(S, rs, "score.txt")
    assert got[0] == 7.0
    # The torn line was not taken: the score was read from the file and appended again.
    with open(os.path.join(S.storage, d[5:], rs[1][5:37], "score.txt")) as f:
        assert got[1] == float(f.read())
    assert _facts(S, d)[-1][0] == rs[5][5:37]


def test_unwritable_index_costs_only_reads(S: StorageSettings) -> None:
    """When the index cannot be written (a read-only store), scores are read each time."""
    d, rs = _built(S, 6)
    os.unlink(_index(S, d))
    os.mkdir(_index(S, d))  # even root cannot append to a folder
    try:
        forget_facts(S)
        first = scores(S, rs, "score.txt")
        assert sorted(first) == [1.0, 2.0, 3.0, 4.0, 7.0, 9.0]
        forget_facts(S)
        assert scores(S, rs, "score.txt") == first
        assert os.listdir(_index(S, d)) == []
    finally:
        os.rmdir(_index(S, d))


def test_build_time_of_a_missing_realization_is_a_ref_error(S: StorageSettings) -> None:
    """rrefbstart of a realization that is not stored raises RefError naming it and the store."""
    _, rs = _built(S)
    ghost = RRef(f"rref:{'0' * 32}{rs[0][37:]}")
    with pytest.raises(RefError) as ei:
        rrefbstart(ghost, S)
    assert str(ei.value) == f"{ghost} is not in the store at {S.storage!r}"


def test_match_latest_ranks_from_the_cache(S: StorageSettings) -> None:
    """match_latest picks the realization with the latest build time in the index."""
    d, rs = _built(S, 6)
    chash = _facts(S, d, "R")[0][1]
    times = (3.0, 9.0, 1.0, 4.0, 2.0, 5.0)
    with open(_index(S, d), "w") as f:
        f.writelines(f"R\t{r[5:37]}\t{chash}\t{t}\n" for r, t in zip(rs, times, strict=True))
    forget_facts(S)
    assert match_latest(1)(S, rs) == [rs[1]]
    assert match_latest(2)(S, list(reversed(rs))) == [rs[1], rs[5]]


def test_many_candidates_skip_dangling_lines(S: StorageSettings) -> None:
    """With more lines than the stat-each limit, a line without its realization is left out."""
    d, clo = instantiate(mkdrv, {"name": "m"}, match_all(), build_wrapper(_three, nouts=3), S=S)
    realize(clo)
    realize(clo, force_rebuild=True)
    rs = drefrrefs(d, S)
    (chash,) = {line[1] for line in _facts(S, d, "R")}
    with open(_index(S, d), "a") as f:
        f.writelines(f"R\t{c * 32}\t{chash}\t1.0\n" for c in "0123")
    assert len(_facts(S, d, "R")) > 4
    assert drefrrefs_chash(d, chash, S) == rs


def test_rref_hashes_needs_one_derivation() -> None:
    """rref_hashes gives the hash parts only when every RRef realizes the given DRef."""
    d = DRef(f"dref:{'2' * 32}-x")
    a, b = RRef(f"rref:{'1' * 32}-{'2' * 32}-x"), RRef(f"rref:{'3' * 32}-{'2' * 32}-x")
    assert rref_hashes([a, b], d) == ["1" * 32, "3" * 32]
    assert rref_hashes([a, RRef(f"rref:{'1' * 32}-{'2' * 32}-y")], d) is None
    assert rref_hashes([RRef(f"rref:{'G' * 32}-{'2' * 32}-x")], d) is None
    assert rref_hashes([], d) == []


def test_index_is_not_read_only(S: StorageSettings) -> None:
    """index.tsv stays appendable (mode 0644) after a reindex rewrites it, and keeps its facts."""
    d, rs = _built(S, 6)
    scores(S, rs, "score.txt")
    store_reindex(S)
    mode = stat.S_IMODE(os.stat(_index(S, d)).st_mode)
    assert mode == 0o644
    assert len(_facts(S, d, "R")) == 6
    assert [line[1] for line in _facts(S, d)] == ["score.txt"] * 6

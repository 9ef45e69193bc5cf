"""Tests of store/index.py: the append-only per-derivation index of a store-v2 store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix import StorageSettings, fsinit, mkSS
from pylightnix.store.chosen import record_text
from pylightnix.store.index import (
    SHRINK_MIN,
    Index,
    _parse_rows,
    append_index,
    chosen_line,
    compact_index,
    forget_index,
    index_path,
    parse_into,
    read_index,
    realization_line,
    score_line,
    shrink_index,
)
from pylightnix.types import DRef, RRef
from tests.strategies import hashparts

D = DRef("dref:" + "1" * 32 + "-x")
C1, C2 = "c" * 32, "d" * 32

good_lines = st.one_of(
    st.builds(
        realization_line,
        hashparts,
        st.sampled_from([C1, C2]),
        st.floats(min_value=0, max_value=2e9),
        failed=st.booleans(),
    ),
    st.builds(
        score_line,
        hashparts,
        st.sampled_from(["acc.txt", "loss"]),
        st.none() | st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.builds(
        chosen_line,
        st.sampled_from([C1, C2]),
        st.floats(min_value=0, max_value=2e9),
        st.lists(st.just("rref:" + "a" * 32 + "-x")).map(lambda rs: record_text(rs, None)),
    ),
)
odd_lines = st.sampled_from(
    ["garbage\n", "R\tshort\tc\t1\n", f"R\t{'a' * 32}\t{C1}\tnan-ish\n", "Q\ta\tb\tc\n", "\n"]
)


def _slow(text: str) -> Index:
    """What the line-by-line reading makes of ``text``."""
    ix = Index()
    lines = text.split("\n")[:-1]
    _parse_rows([p for p in (x.split("\t") for x in lines) if len(p) == 4], ix)
    return ix


@settings(max_examples=300)
@given(st.lists(st.one_of(good_lines, good_lines, odd_lines), max_size=40))
def test_bulk_parsing_agrees_with_line_by_line_reading(lines: list[str]) -> None:
    """Whatever the mix of well-formed and odd lines, the bulk parse files the same facts."""
    text = "".join(lines)
    ix = Index()
    parse_into(text, ix)
    assert ix == _slow(text)


def test_later_lines_win_and_torn_lines_wait(S: StorageSettings) -> None:
    """The later of two lines of one fact wins; a last line without its newline is read
    once it is complete."""
    os.makedirs(os.path.dirname(index_path(S, D)))
    h = "a" * 32
    append_index(S, D, [realization_line(h, C1, 1.0), score_line(h, "acc.txt", 0.5)])
    append_index(S, D, [score_line(h, "acc.txt", 0.7)])
    with open(index_path(S, D), "a") as f:
        f.write(f"S\t{h}\tacc.txt\t0.9")  # being written
    ix = read_index(S, D)
    assert (ix.scores, ix.bstart, list(ix.ctx[C1])) == ({"acc.txt": {h: 0.7}}, {h: 1.0}, [h])
    with open(index_path(S, D), "a") as f:
        f.write("\n")
    assert read_index(S, D).scores == {"acc.txt": {h: 0.9}}


def test_a_compaction_is_seen_as_a_new_file(S: StorageSettings) -> None:
    """After a compaction (a new inode) a reader parses the new file from its start."""
    os.makedirs(os.path.dirname(index_path(S, D)))
    a, b = "a" * 32, "b" * 32
    append_index(S, D, [realization_line(a, C1, 1.0), realization_line(b, C1, 2.0)])
    assert set(read_index(S, D).ctx[C1]) == {a, b}
    assert compact_index(S, D, lambda h: h == b, locked=lambda: None)
    assert set(read_index(S, D).ctx[C1]) == {b}
    assert not compact_index(S, D, lambda h: h == b, locked=lambda: None)  # nothing to drop


def test_superseded_chosen_records_are_shrunk_away(S: StorageSettings) -> None:
    """Once superseded chosen records fill most of the file, they are dropped; realization
    lines all stay, a dangling one included."""
    os.makedirs(os.path.dirname(index_path(S, D)))
    a = "a" * 32
    append_index(S, D, [realization_line(a, C1, 1.0), realization_line("f" * 32, C1, 2.0)])
    big = record_text([RRef("rref:" + "a" * 32 + "-" + "1" * 32 + "-x")] * 1000, None)
    n = 0
    while read_index(S, D).stale < SHRINK_MIN or 3 * read_index(S, D).stale < os.path.getsize(
        index_path(S, D)
    ):
        assert not shrink_index(S, D)  # not yet worth a rewrite
        append_index(S, D, [chosen_line(C1, float(n), big)])
        n += 1
    assert os.path.getsize(index_path(S, D)) > SHRINK_MIN
    assert shrink_index(S, D)
    ix = read_index(S, D)
    assert (ix.stale, set(ix.ctx[C1]), ix.chosen[C1][0]) == (0, {a, "f" * 32}, float(n - 1))
    assert os.path.getsize(index_path(S, D)) < 100_000


_APPENDER = """
import sys
from pylightnix import mkSS
from pylightnix.store.index import append_index, realization_line
S = mkSS(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    append_index(S, sys.argv[3], [realization_line(f"{i:032x}", "c" * 32, float(i))])
print("done", flush=True)
"""


def test_no_line_is_lost_to_concurrent_compactions(tmp_path: Path) -> None:
    """Two processes append 3,000 lines each while this one compacts the file again and
    again: every line is in the final file."""
    S = fsinit(mkSS(str(tmp_path / "plx")))
    d1 = DRef("dref:" + "1" * 32 + "-x")
    os.makedirs(os.path.dirname(index_path(S, d1)))
    n = 3000
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _APPENDER.replace("{i:032x}", f"{k}{{i:031x}}"),
                S.root,
                str(n),
                d1,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    for p in procs:  # both started: let them append at once, and compact meanwhile
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    compactions = 0
    while any(p.poll() is None for p in procs) and compactions < 100_000:
        compactions += compact_index(S, d1, lambda h: True, locked=lambda: None)
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert outs == ["done\n", "done\n"]
    forget_index(S)
    got = set(read_index(S, d1).ctx["c" * 32])
    want = {f"{k}{i:031x}" for k in (1, 2) for i in range(n)}
    assert got == want
    assert compactions > 0

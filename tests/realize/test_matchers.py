"""Tests of realize/matchers.py: each matcher alone, in realize, ties, errors, pickling."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix import (
    Build,
    MatcherError,
    StorageSettings,
    build_outpaths,
    build_wrapper,
    instantiate,
    match,
    match_all,
    match_best,
    match_exact,
    match_latest,
    match_only,
    match_some,
    mkdrv,
    realize,
    realizeMany,
)
from pylightnix.realize.matchers import All, FileKey, Match, NoKey, Only, TopN
from pylightnix.store.query import drefrrefs, rrefbstart
from pylightnix.types import RRef
from tests.strategies import rrefs as rref_strategy


def _r(c: str) -> RRef:
    return RRef(f"rref:{c * 32}-{'d' * 32}-x")


A, B, C = _r("a"), _r("b"), _r("c")


# No hypothesis deadlines: a loaded 2-core CI machine must not fail a correct test.
@settings(deadline=None)
@given(st.lists(rref_strategy, unique=True, max_size=8), st.randoms(use_true_random=False))
def test_keyless_matchers_ignore_candidate_order(cands: list[RRef], rnd: Any) -> None:
    """match_all/match_some/match_only answer the same whatever order candidates come in."""
    shuffled = list(cands)
    rnd.shuffle(shuffled)
    for m in (match_all(), match_some(2)):
        assert m(None, cands) == m(None, shuffled)  # type: ignore[arg-type]
    assert match_all()(None, shuffled) == (sorted(cands) or None)  # type: ignore[arg-type]
    assert (
        match_some(2)(None, shuffled)
        == (  # type: ignore[arg-type]
            sorted(cands)[:2] if len(cands) >= 2 else None
        )
    )


def test_pure_matchers() -> None:
    """Keyless matchers: all, some(n), only and exact on fixed candidates."""
    assert match_all()(None, [C, A, B]) == [A, B, C]  # type: ignore[arg-type]
    assert match_all()(None, []) is None  # type: ignore[arg-type]
    assert match_some(2)(None, [C, A, B]) == [A, B]  # type: ignore[arg-type]
    assert match_some(4)(None, [C, A, B]) is None  # type: ignore[arg-type]
    assert match_only()(None, [B]) == [B]  # type: ignore[arg-type]
    assert match_only()(None, []) is None  # type: ignore[arg-type]
    assert match_exact([B, A])(None, [A, B, C]) == [A, B]  # type: ignore[arg-type]
    assert match_exact([B, A])(None, [A, C]) is None  # type: ignore[arg-type]
    assert match(NoKey(), TopN(1))(None, [C, B]) == [B]  # type: ignore[arg-type]


def test_match_only_refuses_two_candidates() -> None:
    """match_only with several candidates raises MatcherError listing them."""
    with pytest.raises(MatcherError) as ei:
        match_only()(None, [A, B])  # type: ignore[arg-type]
    assert str(ei.value) == (
        f"match_only found 2 realizations ({A}, {B}...) where it expects at most one: "
        "remove the extra ones with rmref, or use match_latest()"
    )
    assert ei.value.rrefs == [A, B]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None])
def test_n_must_be_a_positive_int(bad: Any) -> None:
    """match_latest/match_some/match_best refuse a bad n by name."""
    for name, f in (("match_latest", match_latest), ("match_some", match_some)):
        with pytest.raises(MatcherError) as ei:
            f(bad)
        assert str(ei.value) == f"{name}(n={bad!r}): n must be a positive int"
    with pytest.raises(MatcherError, match=r"^match_best\(n="):
        match_best("a.txt", bad)


def test_custom_key_ranks_highest_first_and_skips_none() -> None:
    """match(key, trim) ranks by key (highest first), drops None keys, ties by RRef text."""
    scores = {A: 1.0, B: 5.0, C: None}
    m = match(lambda S, r: scores[r], All())
    assert m(None, [A, B, C]) == [B, A]  # type: ignore[arg-type]
    tie = match(lambda S, r: 1, TopN(2))
    assert tie(None, [C, B, A]) == [A, B]  # type: ignore[arg-type]


def _scored(b: Build) -> None:
    outs = build_outpaths(b)
    scores = list(b.realize_args.get("scores", [3, 9, 1]))[: len(outs)]
    for o, s in zip(outs, scores, strict=True):
        with open(os.path.join(o, "score.txt"), "w") as f:
            f.write(f"{s}\n")
        with open(os.path.join(o, "id.txt"), "w") as f:
            f.write(f"{s}-{os.urandom(4).hex()}")


def test_match_all_and_best_on_three_outputs(S: StorageSettings) -> None:
    """nouts=3: match_all takes all three; match_best('score.txt', n=2) the top two."""
    d, clo = instantiate(mkdrv, {"name": "n3"}, match_all(), build_wrapper(_scored, nouts=3), S=S)
    got = realizeMany(clo)
    assert got == drefrrefs(d, S) and len(got) == 3
    best = match_best("score.txt", n=2)(S, got)
    assert best is not None
    by_score = {}
    for r in got:
        with open(os.path.join(S.storage, d[5:], r[5:37], "score.txt")) as f:
            by_score[float(f.read())] = r
    assert sorted(best) == sorted([by_score[9.0], by_score[3.0]])
    assert match_best("score.txt", n=1)(S, got) == [by_score[9.0]]
    assert match_best("missing.txt")(S, got) is None


def test_match_best_in_realize_picks_the_best_build(S: StorageSettings) -> None:
    """A match_best stage built with nouts=3 chooses the output with the highest score."""
    d, clo = instantiate(
        mkdrv, {"name": "b3"}, match_best("score.txt"), build_wrapper(_scored, nouts=3), S=S
    )
    (r,) = realizeMany(clo)
    with open(os.path.join(S.storage, d[5:], r[5:37], "score.txt")) as f:
        assert f.read() == "9\n"


def test_match_best_ties_are_broken_by_rref_text(S: StorageSettings) -> None:
    """Equal scores: the smaller RRef wins, every time."""
    d, clo = instantiate(mkdrv, {"name": "t"}, match_all(), build_wrapper(_scored, nouts=3), S=S)
    realize(clo, realize_args={d: {"scores": [7, 7, 7]}})
    cands = drefrrefs(d, S)
    assert match_best("score.txt", 2)(S, cands) == sorted(cands)[:2]
    assert match_best("score.txt", 2)(S, list(reversed(cands))) == sorted(cands)[:2]


def test_match_best_refuses_a_non_number(S: StorageSettings) -> None:
    """A metric file that is not a number raises MatcherError naming the file."""

    def bad(b: Build) -> None:
        with open(os.path.join(build_outpaths(b)[0], "score.txt"), "w") as f:
            f.write("high")

    d, clo = instantiate(mkdrv, {"name": "nan"}, match_all(), build_wrapper(bad), S=S)
    realize(clo)
    (r,) = drefrrefs(d, S)
    p = os.path.join(S.storage, d[5:], r[5:37], "score.txt")
    with pytest.raises(MatcherError) as ei:
        match_best("score.txt")(S, [r])
    assert str(ei.value) == (
        f"match_best: {p!r} holds 'high', not a number: write the metric as plain text, e.g. '0.93'"
    )


def test_match_latest_prefers_newer_builds(S: StorageSettings) -> None:
    """After a forced rebuild, match_latest(2) picks the newest two realizations."""
    d, clo = instantiate(
        mkdrv, {"name": "l"}, match_latest(2), build_wrapper(_scored, nouts=2), S=S
    )
    first = realizeMany(clo)
    _, _, ctx = realize(clo, force_rebuild=[d])
    second = ctx[d]
    assert len(drefrrefs(d, S)) == 4
    assert set(second).isdisjoint(first)
    assert min(rrefbstart(r, S) for r in second) >= max(rrefbstart(r, S) for r in first)
    assert realizeMany(clo) == second


def test_match_some_reuses_without_building(S: StorageSettings, tmp_path: Path) -> None:
    """match_some(2) takes the first two of three existing realizations by RRef text."""
    d, clo = instantiate(mkdrv, {"name": "s"}, match_all(), build_wrapper(_scored, nouts=3), S=S)
    realize(clo)
    _, clo2 = instantiate(mkdrv, {"name": "s"}, match_some(2), build_wrapper(_scored), S=S)
    assert realizeMany(clo2) == sorted(drefrrefs(d, S))[:2]


def test_match_only_in_realize_raises_when_two_exist(S: StorageSettings) -> None:
    """A forced rebuild of a non-deterministic match_only stage leaves two: MatcherError."""
    d, clo = instantiate(mkdrv, {"name": "o"}, match_only(), build_wrapper(_scored, nouts=1), S=S)
    realize(clo, realize_args={d: {"scores": [1]}})
    with pytest.raises(MatcherError) as ei:
        realize(clo, force_rebuild=[d], realize_args={d: {"scores": [1]}})
    assert str(ei.value).startswith("match_only found 2 realizations (")
    assert ei.value.dref == d  # type: ignore[attr-defined]
    assert f"while matching {d}" in ei.value.__notes__  # type: ignore[attr-defined]


def test_match_exact_pins_realizations(S: StorageSettings) -> None:
    """match_exact chooses exactly the pinned RRefs, and builds when they are missing."""
    d, clo = instantiate(mkdrv, {"name": "x"}, match_all(), build_wrapper(_scored, nouts=3), S=S)
    rr = realizeMany(clo)
    _, clo2 = instantiate(mkdrv, {"name": "x"}, match_exact([rr[2]]), build_wrapper(_scored), S=S)
    assert realizeMany(clo2) == [rr[2]]
    gone = RRef("rref:" + "0" * 32 + "-" + d[5:])
    _, clo3 = instantiate(mkdrv, {"name": "x"}, match_exact([gone]), build_wrapper(_scored), S=S)
    with pytest.raises(MatcherError, match="still unsatisfied after a build"):
        realize(clo3)


@pytest.mark.parametrize(
    "m",
    [
        match_latest(3),
        match_all(),
        match_some(2),
        match_only(),
        match_exact([A, B]),
        match_best("acc.txt", 2),
        match(FileKey("x"), Only()),
    ],
    ids=repr,
)
def test_every_matcher_pickles_and_has_a_readable_repr(m: Any) -> None:
    """Matchers cross process boundaries: pickle round trip gives an equal matcher."""
    m2 = pickle.loads(pickle.dumps(m))
    assert m2 == m
    assert repr(m2) == repr(m)
    assert "<function" not in repr(m)


def test_match_best_never_reads_a_metric_outside_the_store(
    S: StorageSettings, tmp_path: Any
) -> None:
    """A metric file that is a link out of the store is a MatcherError, not a number."""
    secret = tmp_path / "score.txt"
    secret.write_text("100")

    def link(b: Build) -> None:
        os.symlink(str(secret), os.path.join(build_outpaths(b)[0], "score.txt"))

    d, clo = instantiate(mkdrv, {"name": "lnk"}, match_all(), build_wrapper(link), S=S)
    realize(clo)
    (r,) = drefrrefs(d, S)
    p = os.path.join(S.storage, d[5:], r[5:37], "score.txt")
    with pytest.raises(MatcherError) as ei:
        match_best("score.txt")(S, [r])
    assert str(ei.value) == (
        f"match_best: {p!r} is a symlink leading outside the store (to {str(secret)!r}): "
        "a metric is read from the store only"
    )


class _GivenKeys:
    """A ranking key whose batch answer is fixed by the test."""

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys

    def __call__(self, S: Any, rref: RRef) -> Any:
        raise AssertionError("batch_keys is used")

    def batch_keys(self, S: Any, rrefs: list[RRef]) -> list[Any]:
        return self.keys


def _ranked_by_sorting(keys: list[Any], rrefs: list[RRef], n: int) -> list[RRef] | None:
    """TopN(n) of the full ranking: keys None left out, highest first, ties by RRef."""
    scored = sorted(
        (kr for kr in zip(keys, rrefs, strict=True) if kr[0] is not None), key=lambda kr: kr[1]
    )
    scored.sort(key=lambda kr: kr[0], reverse=True)
    ranked = [r for _, r in scored]
    return ranked[:n] if len(ranked) >= n else None


_number_keys = st.one_of(
    st.integers(-5, 5),
    st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 1)),
    st.just(0.0),
    st.just(-0.0),
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(_number_keys | _number_keys | st.none(), rref_strategy), max_size=60)
    | st.lists(st.tuples(_number_keys, rref_strategy), max_size=60),
    st.integers(1, 6),
)
def test_top_n_of_many_ranks_as_the_full_sort(pairs: list[tuple[Any, RRef]], n: int) -> None:
    """The one-pass choice of the n best among many candidates equals the first n of the
    full ranking, ties and missing keys included."""
    keys = [k for k, _ in pairs]
    rrefs = [r for _, r in pairs]
    m = Match(_GivenKeys(keys), TopN(n))
    assert m(None, rrefs) == _ranked_by_sorting(keys, rrefs, n)  # type: ignore[arg-type]


_HASHES = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


def _reference(m: Match, keys: dict[str, Any], hashes: list[str]) -> list[str] | None:
    """A built-in matcher's answer by its definition: keys ``None`` left out, highest key
    first, ties by hash part (as by RRef text within one derivation), then the trim."""
    ranked = sorted((h for h in hashes if keys[h] is not None), key=lambda h: (-keys[h], h))
    if isinstance(m.trim, TopN):
        return ranked[: m.trim.n] if len(ranked) >= m.trim.n else None
    if isinstance(m.trim, Only) and len(ranked) > 1:
        raise AssertionError("index_pick answered for match_only with several candidates")
    return ranked or None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(_HASHES, st.integers(0, 4) | st.none(), st.booleans()),
        unique_by=lambda t: t[0],
        max_size=12,
    ),
    st.sampled_from(["latest", "best", "all", "some", "only"]),
    st.integers(1, 3),
)
def test_an_answer_from_the_index_is_the_answer_among_the_candidates_in_place(
    cands: list[tuple[str, int | None, bool]], kind: str, n: int
) -> None:
    """Whatever lines of the index have no folder (insertions in flight or undone), when
    every pick from the index is in place it is exactly the matcher's answer among the
    candidates in place; with every candidate in place the index always answers."""
    from pylightnix.store.index import Index

    m = {
        "latest": match_latest(n),
        "best": match_best("score.txt", n),
        "all": match_all(),
        "some": match_some(n),
        "only": match_only(),
    }[kind]
    hashes = [h for h, _, _ in cands]
    ix = Index()
    ix.bstart = {h: float(k if k is not None else -1) for h, k, _ in cands}
    ix.scores = {"score.txt": {h: None if k is None else float(k) for h, k, _ in cands}}
    keys: dict[str, Any] = {
        "latest": ix.bstart,
        "best": ix.scores["score.txt"],
    }.get(kind, dict.fromkeys(hashes, 0))
    placed = [h for h, _, here in cands if here]
    picked = m.index_pick(ix, hashes)
    if picked is not None and set(picked) <= set(placed):
        assert sorted(picked) == sorted(_reference(m, keys, placed) or [])
    if len(placed) == len(hashes) and not (kind == "only" and len(hashes) > 1):
        assert picked == (_reference(m, keys, hashes) or None)


def test_index_pick_declines_what_the_index_cannot_tell() -> None:
    """A score not read yet, a custom key or trim, match_only among several: no answer
    from the index (the matcher is then asked with the candidates in place)."""
    from pylightnix.store.index import Index

    ix = Index()
    a, b = "a" * 32, "b" * 32
    ix.bstart = {a: 1.0, b: 2.0}
    ix.scores = {"score.txt": {a: 3.0}}
    assert match_best("score.txt").index_pick(ix, [a, b]) is None
    assert match_best("score.txt").index_pick(ix, [a]) == [a]
    assert match_best(lambda S, r: 1.0).index_pick(ix, [a, b]) is None
    assert match(NoKey(), lambda rrefs: rrefs).index_pick(ix, [a, b]) is None
    assert match_only().index_pick(ix, [a, b]) is None
    assert match_latest(1).index_pick(ix, [a, b]) == [b]
    assert match_latest(3).index_pick(ix, [a, b]) is None


def test_matchers_are_made_once_per_kind_and_n() -> None:
    """One immutable matcher serves every stage that asks for the same kind and n; a
    bad n is refused every time, and other n are other matchers."""
    assert match_latest(2) is match_latest(2) and match_only() is match_only()
    assert match_all() is match_all() and match_some(3) is match_some(3)
    assert match_latest(2) is not match_latest(3) and match_latest(1) != match_some(1)
    for _ in range(2):
        with pytest.raises(MatcherError):
            match_latest(0)
        with pytest.raises(MatcherError):
            match_some(True)  # type: ignore[arg-type]

"""Tests of realize/engine.py: the realize semantics on random DAGs and on focused cases."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylightnix import (
    Build,
    BuildError,
    DRef,
    MatcherError,
    NotRealizedError,
    PromiseError,
    RealizeError,
    Registry,
    RRef,
    StorageSettings,
    StoreError,
    build_outpath,
    build_outpaths,
    build_wrapper,
    evaluate,
    fsinit,
    instantiate,
    match_all,
    match_latest,
    match_only,
    mkdrv,
    mkSS,
    realize,
    realize1,
    realizeMany,
    selfref,
)
from pylightnix.realize.build import build_tmpdir
from pylightnix.realize.step import RealizeOptions, StepResult, realize_one
from pylightnix.store.fsops import remove_tree
from pylightnix.store.query import drefrrefs, drefrrefsC, rref2path, rrefctx
from tests.helpers import listing
from tests.realize.dagkit import Counting, build_counts, calls, dag_stage, expected_choice
from tests.strategies import dags

DAG_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Env:
    """A fresh store and a counter folder outside it, removed at the end."""

    def __init__(self, base: str) -> None:
        self.base = tempfile.mkdtemp(dir=base)
        self.S = fsinit(mkSS(os.path.join(self.base, "root")))
        self.counter = os.path.join(self.base, "counter")
        os.mkdir(self.counter)

    def close(self) -> None:
        remove_tree(self.base)


def _check_invariants(
    S: StorageSettings, specs: list[dict[str, Any]], drefs: list[DRef], ctx: dict[DRef, list[RRef]]
) -> None:
    """Every stage's choice is its matcher's pick among candidates of its recorded context."""
    for sp, d in zip(specs, drefs, strict=True):
        dctx = {drefs[j]: ctx[drefs[j]] for j in sp["deps"]}
        cands = drefrrefsC(d, dctx, S)
        assert ctx[d] == expected_choice(S, sp, cands)
        for r in ctx[d]:
            assert rrefctx(r, S) == dctx


@pytest.fixture
def counter(tmp_path: Path) -> str:
    """A folder outside the store where realizers record their calls."""
    p = tmp_path / "counter"
    p.mkdir()
    return str(p)


@DAG_SETTINGS
@given(dags(), st.data())
def test_random_dags_realize_reuse_and_force(
    tmp_path: Path, specs: list[dict[str, Any]], data: st.DataObject
) -> None:
    """On random DAGs: matcher choices, recorded contexts, reuse, force_rebuild and dry runs."""
    env = Env(str(tmp_path))
    try:
        S, counter = env.S, env.counter
        drefs, clo = instantiate(dag_stage, specs, counter, True, S=S)
        # dry run on an empty store: nothing built, store unchanged, nothing chosen
        before = listing(S.root)
        _, _, dctx = realize(clo, dry_run=True)
        assert dctx == {}
        assert calls(counter) == []
        assert listing(S.root) == before

        _, _, ctx = realize(clo)
        assert build_counts(counter) == dict.fromkeys(drefs, 1)
        _check_invariants(S, specs, drefs, ctx)
        assert os.listdir(S.tmpdir) == []

        # realizing again builds nothing and chooses the same
        n = len(calls(counter))
        _, _, ctx_again = realize(instantiate(dag_stage, specs, counter, True, S=S)[1])
        assert ctx_again == ctx
        assert len(calls(counter)) == n
        # so does a dry run, and it leaves the store as it is
        before = listing(S.root)
        assert realize(clo, dry_run=True)[2] == ctx
        assert listing(S.root) == before
        # assert_realized of everything passes when everything is realized
        assert realize(clo, assert_realized=drefs)[2] == ctx

        # force_rebuild=[d]: d builds anew; dependants build iff their context changed
        k = data.draw(st.integers(min_value=0, max_value=len(drefs) - 1))
        counts0 = build_counts(counter)
        nreal0 = {d: len(drefrrefs(d, S)) for d in drefs}
        _, _, ctx2 = realize(clo, force_rebuild=[drefs[k]])
        counts1 = build_counts(counter)
        for i, (sp, d) in enumerate(zip(specs, drefs, strict=True)):
            changed = any(ctx2[drefs[j]] != ctx[drefs[j]] for j in sp["deps"])
            expect_built = i == k or changed
            assert counts1[d] - counts0[d] == int(expect_built), (i, k)
            if i == k and sp["matcher"] != "only":
                assert len(drefrrefs(d, S)) == nreal0[d] + sp["nouts"]
        _check_invariants(S, specs, drefs, ctx2)

        # force_rebuild=True builds every stage once more
        counts2 = build_counts(counter)
        _, _, ctx3 = realize(clo, force_rebuild=True)
        assert build_counts(counter) == {d: counts2[d] + 1 for d in drefs}
        _check_invariants(S, specs, drefs, ctx3)
        assert os.listdir(S.tmpdir) == []
    finally:
        env.close()


@settings(DAG_SETTINGS, max_examples=10)
@given(dags(max_stages=8))
def test_jobs_2_gives_the_same_results_as_jobs_1(
    tmp_path: Path, specs: list[dict[str, Any]]
) -> None:
    """Deterministic stages realized with jobs=2 in a fresh store give exactly the jobs=1 RRefs."""
    results = []
    for jobs in (1, 2):
        env = Env(str(tmp_path))
        try:
            drefs, clo = instantiate(dag_stage, specs, env.counter, False, S=env.S)
            _, _, ctx = realize(clo, jobs=jobs)
            assert build_counts(env.counter) == dict.fromkeys(drefs, 1)
            results.append(ctx)
        finally:
            env.close()
    assert results[0] == results[1]


def test_realize_args_reach_the_realizer(S: StorageSettings, counter: str) -> None:
    """realize_args[dref] is handed to that derivation's realizer, others get {}."""
    specs = [{"deps": [], "nouts": 1, "matcher": "only", "n": 1}] * 1 + [
        {"deps": [0], "nouts": 1, "matcher": "only", "n": 1}
    ]
    drefs, clo = instantiate(dag_stage, specs, counter, False, S=S)
    realize(clo, realize_args={drefs[1]: {"lr": 0.5, "tag": "x"}})
    got = {c["dref"]: c["args"] for c in calls(counter)}
    assert got == {drefs[0]: {}, drefs[1]: {"lr": 0.5, "tag": "x"}}


@pytest.mark.parametrize("dry_run", [False, True])
def test_assert_realized_raises_without_touching_the_store(
    S: StorageSettings, counter: str, dry_run: bool
) -> None:
    """A listed derivation that needs a build raises NotRealizedError (in a dry run too)."""
    specs = [{"deps": [], "nouts": 1, "matcher": "only", "n": 1}]
    drefs, clo = instantiate(dag_stage, specs, counter, False, S=S)
    before = listing(S.root)
    with pytest.raises(NotRealizedError) as ei:
        realize(clo, assert_realized=drefs, dry_run=dry_run)
    assert str(ei.value) == (
        f"{drefs[0]} ('s0') is not realized in this context but was listed in "
        "assert_realized: realize it first, or drop it from the list"
    )
    assert ei.value.dref == drefs[0]  # type: ignore[attr-defined]
    assert listing(S.root) == before
    assert calls(counter) == []


def _three(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "score.txt"), "w") as f:
            f.write(str(i))


def _noop(b: Build) -> None:
    pass


def test_a_dependency_free_stage_has_the_empty_context(S: StorageSettings) -> None:
    """The minimal context of a stage without deps is {} (stored as '{}')."""
    rref = realize1(instantiate(mkdrv, {"name": "free"}, match_only(), build_wrapper(_noop), S=S))
    assert rrefctx(rref, S) == {}
    with open(os.path.join(rref2path(rref, S), "__pylightnix__", "context.json")) as f:
        assert f.read() == "{}"


def test_contexts_hold_direct_dependencies_only(S: StorageSettings) -> None:
    """A realization's stored context lists its direct dependencies, not their deps."""

    def stage(r: Registry) -> DRef:
        a = mkdrv({"name": "a"}, match_only(), build_wrapper(_noop), r=r)
        b = mkdrv({"name": "b", "a": a}, match_only(), build_wrapper(_noop), r=r)
        return mkdrv({"name": "c", "b": b}, match_only(), build_wrapper(_noop), r=r)

    res, clo = instantiate(stage, S=S)
    _, _, ctx = realize(clo)
    (b,) = [d for d in ctx if d.endswith("-b")]
    assert rrefctx(ctx[res][0], S) == {b: ctx[b]}


def _missing_promise(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "model.bin"), "w") as f:
        f.write("m")


def test_a_broken_promise_stores_nothing_and_cleans_up(S: StorageSettings) -> None:
    """PromiseError names every missing file; no realization; tmp is empty afterwards."""
    cfg = {"name": "p", "model": [selfref, "model.bin"], "log": [selfref, "logs", "train.txt"]}
    d, clo = instantiate(mkdrv, cfg, match_only(), build_wrapper(_missing_promise), S=S)
    with pytest.raises(PromiseError) as ei:
        realize(clo)
    e = ei.value
    assert e.dref == d  # type: ignore[attr-defined]
    (missing,) = e.missing  # type: ignore[attr-defined]
    assert missing.endswith(os.path.join("logs", "train.txt"))
    assert str(e).startswith(
        f"stage 'p' ({d}) did not produce the files its config promises: {missing} "
        "(write them in the realizer, or remove the [selfref, ...] entries from the config)"
    )
    assert drefrrefs(d, S) == []
    assert os.listdir(S.tmpdir) == []


class Boom(Exception):
    """A realizer's own exception."""


def _raise(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "partial.txt"), "w") as f:
        f.write("half")
    raise Boom("disk full")


def test_a_failing_realizer_aborts_with_a_build_error_and_no_trace(S: StorageSettings) -> None:
    """BuildError names stage and DRef and chains the cause; the store keeps no trace."""
    d, clo = instantiate(mkdrv, {"name": "bad"}, match_only(), build_wrapper(_raise), S=S)
    before = listing(S.storage)
    with pytest.raises(BuildError) as ei:
        realize(clo)
    e = ei.value
    assert str(e) == f"building stage 'bad' ({d}) failed: Boom: disk full"
    assert isinstance(e.__cause__, Boom)
    assert (e.dref, e.stage) == (d, "bad")  # type: ignore[attr-defined]
    assert drefrrefs(d, S) == []
    assert os.listdir(S.tmpdir) == []
    after = [x for x in listing(S.storage) if not x[0].startswith(".locks")]
    assert after == [x for x in before if not x[0].startswith(".locks")]


def test_keep_failed_keeps_the_build_folder(S: StorageSettings) -> None:
    """With keep_failed=True the failed build's folder stays in tmp with its partial output."""
    _, clo = instantiate(mkdrv, {"name": "bad"}, match_only(), build_wrapper(_raise), S=S)
    with pytest.raises(BuildError):
        realize(clo, keep_failed=True)
    (kept,) = os.listdir(S.tmpdir)
    found = [f for _, _, fs in os.walk(os.path.join(S.tmpdir, kept)) for f in fs]
    assert "partial.txt" in found


def test_a_failure_stops_dependants_but_keeps_finished_builds(
    S: StorageSettings, counter: str
) -> None:
    """Stages built before the failure stay; the failing stage's dependants are not built."""

    def stage(r: Registry) -> DRef:
        ok = mkdrv({"name": "ok"}, match_only(), Counting(counter), r=r)
        bad = mkdrv({"name": "bad", "ok": ok}, match_only(), build_wrapper(_raise), r=r)
        return mkdrv({"name": "after", "bad": bad}, match_only(), Counting(counter), r=r)

    _, clo = instantiate(stage, S=S)
    with pytest.raises(BuildError):
        realize(clo)
    assert [c["dref"].rsplit("-", 1)[1] for c in calls(counter)] == ["ok"]


def test_match_latest_needing_more_outputs_than_built_is_a_matcher_error(
    S: StorageSettings,
) -> None:
    """A matcher still unsatisfied after a build raises MatcherError with a hint."""
    d, clo = instantiate(mkdrv, {"name": "m"}, match_latest(2), build_wrapper(_noop), S=S)
    with pytest.raises(MatcherError) as ei:
        realize(clo)
    assert str(ei.value) == (
        f"matcher {match_latest(2)!r} of {d} is still unsatisfied after a build: "
        "it rejects what the realizer produced (check that it can accept a fresh "
        "realization, e.g. match_latest(n) needs n outputs: build_wrapper(f, nouts=n))"
    )


def _foreign(S: StorageSettings, rrefs: list[str]) -> list[str] | None:
    return ["rref:" + "0" * 32 + "-" + "1" * 32 + "-x"] if rrefs else None


def _not_a_list(S: StorageSettings, rrefs: list[str]) -> Any:
    return set(rrefs) if rrefs else None


def test_a_matcher_returning_foreign_rrefs_is_refused(S: StorageSettings) -> None:
    """A matcher may only choose among its candidates."""
    d, clo = instantiate(mkdrv, {"name": "f"}, _foreign, build_wrapper(_noop), S=S)
    with pytest.raises(MatcherError) as ei:
        realize(clo)
    assert str(ei.value) == (
        f"matcher {_foreign!r} of {d} returned rref:{'0' * 32}-{'1' * 32}-x, which is not "
        "among its candidates: a matcher may only choose from the list it is given"
    )


def test_a_matcher_returning_a_non_list_is_refused(S: StorageSettings) -> None:
    """A matcher must answer a list or None."""
    d, clo = instantiate(mkdrv, {"name": "f"}, _not_a_list, build_wrapper(_noop), S=S)
    with pytest.raises(MatcherError) as ei:
        realize(clo)
    assert str(ei.value) == (
        f"matcher {_not_a_list!r} of {d} returned set, expected a list of RRefs or None"
    )


def test_realize1_on_a_multi_output_match_raises(S: StorageSettings) -> None:
    """realize1 needs exactly one chosen realization; realizeMany returns them all."""
    d, clo = instantiate(mkdrv, {"name": "m3"}, match_all(), build_wrapper(_three, nouts=3), S=S)
    with pytest.raises(RealizeError) as ei:
        realize1(clo)
    assert str(ei.value) == (
        f"{d} matched 3 realizations; realize1 returns exactly one: use realizeMany()"
    )
    assert realizeMany(clo) == sorted(drefrrefs(d, S))
    assert len(drefrrefs(d, S)) == 3


def test_realize1_needs_a_single_target(S: StorageSettings) -> None:
    """A stage returning two DRefs cannot be realize1'd."""

    def two(r: Registry) -> list[DRef]:
        return [
            mkdrv({"name": "x"}, match_only(), build_wrapper(_noop), r=r),
            mkdrv({"name": "y"}, match_only(), build_wrapper(_noop), r=r),
        ]

    res, clo = instantiate(two, S=S)
    with pytest.raises(RealizeError) as ei:
        realize1(clo)
    assert str(ei.value) == (
        "realize1 needs a stage that returns one DRef, this one returned 2: "
        "use realize() or realizeMany()"
    )
    result, clo2, ctx = realize(clo)
    assert result == res and clo2 is clo and sorted(ctx) == sorted(res)


def test_realize_refuses_what_is_not_a_closure() -> None:
    """realize() of something other than instantiate's result is a RealizeError."""
    with pytest.raises(RealizeError) as ei:
        realize("dref:x")  # type: ignore[arg-type]
    assert str(ei.value) == (
        "realize expects a Closure or (result, Closure) from instantiate(), got str"
    )


def test_evaluate_instantiates_and_realizes(S: StorageSettings) -> None:
    """evaluate(stage, S=S) is realize1(instantiate(stage, S=S))."""
    r1 = evaluate(mkdrv, {"name": "e"}, match_only(), build_wrapper(_noop), S=S)
    r2 = realize1(instantiate(mkdrv, {"name": "e"}, match_only(), build_wrapper(_noop), S=S))
    assert r1 == r2


def test_realize_one_reports_what_it_did(S: StorageSettings, counter: str) -> None:
    """realize_one builds once, then matches; a dry run of a forced stage would build."""
    d, clo = instantiate(mkdrv, {"name": "one"}, match_only(), Counting(counter), S=S)
    drv = clo.index[d]
    r1 = realize_one(drv, S, {}, RealizeOptions())
    assert (r1.built, r1.reason) == (True, "built")
    r2 = realize_one(drv, S, {}, RealizeOptions())
    assert r2 == StepResult(d, r1.rrefs, False, "matched")
    r3 = realize_one(drv, S, {}, RealizeOptions(force_all=True, dry_run=True))
    assert r3 == StepResult(d, None, False, "forced")


def _second_output_has_a_fifo(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "x"), "w") as f:
            f.write(str(i))
    os.mkfifo(os.path.join(build_outpaths(b)[1], "pipe"))


def test_one_bad_output_stores_none_of_the_build(S: StorageSettings) -> None:
    """A FIFO in the second output fails the build before the first output is inserted."""
    d, clo = instantiate(
        mkdrv, {"name": "ff"}, match_all(), build_wrapper(_second_output_has_a_fifo, nouts=2), S=S
    )
    with pytest.raises(StoreError) as ei:
        realize(clo)
    assert str(ei.value).endswith(
        "/pipe', which is not a regular file, folder or symlink (sockets, FIFOs and "
        "devices cannot be stored; remove it from the output)"
    )
    assert f"of {d} holds " in str(ei.value)
    assert drefrrefs(d, S) == []
    assert os.listdir(S.tmpdir) == []


def _same_twice(
    S: StorageSettings, dref: DRef, context: dict[DRef, list[str]], args: Any
) -> list[str]:
    o = os.path.join(build_tmpdir(S), "o")
    os.mkdir(o)
    return [o, o + "/"]


def _returns_nothing(
    S: StorageSettings, dref: DRef, context: dict[DRef, list[str]], args: Any
) -> list[str]:
    return []


def test_realizer_results_are_checked(S: StorageSettings) -> None:
    """A realizer must return a non-empty list of distinct folders; else BuildError, no trace."""
    d, clo = instantiate(mkdrv, {"name": "dup"}, match_all(), _same_twice, S=S)
    with pytest.raises(BuildError) as ei:
        realize(clo)
    assert str(ei.value).startswith(f"realizer {_same_twice!r} of {d} returned the same folder")
    d2, clo2 = instantiate(mkdrv, {"name": "none"}, match_all(), _returns_nothing, S=S)
    with pytest.raises(BuildError) as ei2:
        realize(clo2)
    assert str(ei2.value) == (
        f"realizer {_returns_nothing!r} of {d2} returned []: it must return "
        "a non-empty list of output folder paths"
    )
    assert drefrrefs(d, S) == drefrrefs(d2, S) == []
    assert os.listdir(S.tmpdir) == []


def test_the_same_build_on_another_filesystem_gives_the_same_rrefs(
    tmp_path: Path, counter: str
) -> None:
    """Deterministic stages realized in a store on disk and one on tmpfs get equal RRefs."""
    other_base = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    specs = [
        {"deps": [], "nouts": 2, "matcher": "all", "n": 1},
        {"deps": [0], "nouts": 1, "matcher": "only", "n": 1},
    ]
    results = []
    for base in (str(tmp_path), other_base):
        env = Env(base)
        try:
            _, clo = instantiate(dag_stage, specs, counter, False, S=env.S)
            results.append(realize(clo)[2])
        finally:
            env.close()
    assert results[0] == results[1]


def test_a_failure_with_jobs_2_raises_and_leaves_no_temporary_folders(
    S: StorageSettings, counter: str
) -> None:
    """With jobs=2, a failing stage raises BuildError; its dependants never build."""

    def stage(r: Registry) -> list[DRef]:
        oks = [mkdrv({"name": f"ok{i}"}, match_only(), Counting(counter), r=r) for i in range(4)]
        bad = mkdrv({"name": "bad", "oks": oks}, match_only(), build_wrapper(_raise), r=r)
        after = mkdrv({"name": "after", "bad": bad}, match_only(), Counting(counter), r=r)
        return [*oks, after]

    _, clo = instantiate(stage, S=S)
    with pytest.raises(BuildError) as ei:
        realize(clo, jobs=2)
    assert str(ei.value).startswith("building stage 'bad' (")
    assert sorted(c["dref"].rsplit("-", 1)[1] for c in calls(counter)) == [
        "ok0",
        "ok1",
        "ok2",
        "ok3",
    ]
    assert os.listdir(S.tmpdir) == []


def test_options_naming_unknown_derivations_are_refused(S: StorageSettings) -> None:
    """force_rebuild/assert_realized entries outside the closure (or a bare string) raise."""
    d, clo = instantiate(mkdrv, {"name": "k"}, match_only(), build_wrapper(_noop), S=S)
    other = DRef("dref:" + "0" * 32 + "-other")
    with pytest.raises(RealizeError) as ei:
        realize(clo, force_rebuild=[d, other])
    assert str(ei.value) == (
        f"force_rebuild names {other!r}, which is not a derivation of this closure "
        "(1 derivations): pass DRefs returned by the stages instantiated here, "
        "e.g. force_rebuild=[dref]"
    )
    with pytest.raises(RealizeError, match=r"^assert_realized names '-', which is not"):
        realize(clo, assert_realized=d)  # a string is an iterable of characters
    assert drefrrefs(d, S) == []
    assert realize(clo, force_rebuild=[d])[2] == {d: drefrrefs(d, S)}


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", None])
def test_jobs_must_be_a_positive_int(S: StorageSettings, bad: Any) -> None:
    """realize(jobs=...) refuses anything but a positive int, before building anything."""
    d, clo = instantiate(mkdrv, {"name": "j"}, match_only(), build_wrapper(_noop), S=S)
    with pytest.raises(RealizeError) as ei:
        realize(clo, jobs=bad)
    assert str(ei.value) == f"realize(jobs={bad!r}): jobs must be a positive int (1: sequential)"
    assert drefrrefs(d, S) == []

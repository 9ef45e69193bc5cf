"""Tests of failure capture: realizeE sweeps, failed realizations, mkdrvE, retries."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    BuildError,
    DRef,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    drefrrefs,
    drefrrefs_failed,
    drefrrefsC,
    instantiate,
    is_failed,
    match_all,
    match_latest,
    mkdrv,
    mkdrvE,
    realize,
    realizeE,
    rref2path,
    rref_failure,
    rrefctx,
    selfref,
    store_reindex,
)
from pylightnix.config import canonical_json
from pylightnix.hashing import context_hash, failed_realization_hash, hash_tree, realization_hash
from pylightnix.realize.buildlog import TMP_LOG_NAME
from pylightnix.store.index import forget_index
from pylightnix.store.query import dref2path_checked

CALLS: list[str] = []


def _train(b: Build) -> None:
    c = build_cattrs(b)
    print(f"training seed {c.seed}")
    with open(os.path.join(build_outpath(b), "partial.txt"), "w") as f:
        f.write(f"seed {c.seed}")
    # With a flag file the test decides; without one, every third seed fails.
    failing = os.path.exists(c.flag) if c.flag else c.seed % 3 == 0
    if failing:
        raise ValueError(f"diverged at seed {c.seed}")
    with open(os.path.join(build_outpath(b), "score.txt"), "w") as f:
        f.write(str(c.seed))


def _evaluate(b: Build) -> None:
    CALLS.append(str(b.dref))
    with open(os.path.join(build_outpath(b), "eval.txt"), "w") as f:
        f.write("ok")


def _no_promise(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "other.txt"), "w") as f:
        f.write("x")


def _sweep(n: int, flag: str = "") -> list[DRef]:
    out = []
    for i in range(n):
        t = mkdrv({"name": "train", "seed": i, "flag": flag}, match_latest(), build_wrapper(_train))
        out.append(mkdrv({"name": "eval", "model": t}, match_latest(), build_wrapper(_evaluate)))
    return out


def _read(*p: str) -> str:
    with open(os.path.join(*p)) as f:
        return f.read()


def test_sweep_goes_on_and_reports_failures(S: StorageSettings) -> None:
    """Seeds 0 and 3 of 5 fail; the others and their evaluations are built."""
    CALLS.clear()
    res, clo, ctx, fails = realizeE(instantiate(_sweep, 5, S=S))
    trains = [d.dref for d in clo.derivations if d.dref.endswith("-train")]
    evals = list(res)
    bad_t = {trains[0], trains[3]}
    bad_e = {evals[0], evals[3]}
    assert set(fails) == bad_t | bad_e
    for d in bad_t:
        f = fails[d]
        assert (f.error, f.message, f.dependency) == (
            "ValueError",
            f"diverged at seed {trains.index(d)}",
            None,
        )
        assert "raise ValueError" in f.traceback
        assert ctx[d] == [f.rref]
        assert is_failed(f.rref, S)
        assert rref_failure(f.rref, S) == f
    for i in (1, 2, 4):
        r = ctx[trains[i]][0]
        assert not is_failed(r, S)
        assert _read(rref2path(r, S), "score.txt") == str(i)
    assert len(CALLS) == 3


def test_failed_realization_keeps_partial_outputs(S: StorageSettings) -> None:
    """The partial outputs of a failed build are kept in its realization under plain names
    (out0, not the temporary out0-<pid>-<random>); a rerun failing alike gives the same RRef."""
    _, clo, _, fails = realizeE(instantiate(_sweep, 1, S=S))
    f = fails[clo.derivations[0].dref]
    root = rref2path(f.rref, S)
    assert sorted(os.listdir(root)) == ["__pylightnix__", "out0"]
    assert _read(root, "out0", "partial.txt") == "seed 0"
    _, _, _, again = realizeE(instantiate(_sweep, 1, S=S))
    assert again[clo.derivations[0].dref].rref == f.rref
    assert _read(root, "__pylightnix__", "build.log") == "training seed 0\n"
    assert not os.path.exists(os.path.join(root, TMP_LOG_NAME))
    assert sorted(os.listdir(os.path.join(root, "__pylightnix__"))) == [
        "build.log",
        "context.json",
        "failure.json",
        "meta.json",
    ]


def test_downstream_is_failed_without_running(S: StorageSettings) -> None:
    """A stage depending on a failed one is recorded failed, its realizer never runs."""
    CALLS.clear()
    res, clo, ctx, fails = realizeE(instantiate(_sweep, 1, S=S))
    t, e = clo.derivations[0].dref, res[0]
    f = fails[e]
    assert CALLS == []
    assert (f.error, f.dependency, f.traceback) == ("DependencyFailed", fails[t].rref, "")
    assert f.message == (
        f"not built: its dependency {t} failed (see {fails[t].rref}); fix that stage "
        "and realize again"
    )
    assert rrefctx(f.rref, S) == {t: [fails[t].rref]}
    assert ctx[e] == [f.rref]


def test_matchers_never_see_failed_realizations(S: StorageSettings) -> None:
    """Failed realizations are not candidates: the context index lists none of them."""
    _, clo, _, fails = realizeE(instantiate(_sweep, 1, S=S))
    t = clo.derivations[0].dref
    assert drefrrefsC(t, {}, S) == []
    assert drefrrefs_failed(t, {}, S) == [fails[t].rref]
    assert match_all()(S, drefrrefsC(t, {}, S)) is None


def test_failed_hash_domain_differs() -> None:
    """Same context and tree: a failed RRef hash never equals the successful one."""
    ch = context_hash({})
    tree = "0" * 64
    assert failed_realization_hash(ch, tree, canonical_json({})) != realization_hash(ch, tree)


def test_failure_is_covered_by_the_hash(S: StorageSettings) -> None:
    """The stored RRef hash is recomputable from the tree, the context and failure.json."""
    _, clo, _, fails = realizeE(instantiate(_sweep, 1, S=S))
    f = fails[clo.derivations[0].dref]
    root = rref2path(f.rref, S)
    with open(os.path.join(root, "__pylightnix__", "failure.json"), "rb") as fh:
        fjson = fh.read()
    h = failed_realization_hash(
        context_hash({}), hash_tree(root, exclude=["__pylightnix__"]), fjson
    )
    assert f.rref.startswith(f"rref:{h}-")


def test_retry_by_default(S: StorageSettings, tmp_path: Any) -> None:
    """A failed realization does not block a retry: the next realizeE builds again."""
    flag = os.path.join(tmp_path, "fail")
    open(flag, "w").close()
    _, clo, _, fails = realizeE(instantiate(_sweep, 2, flag, S=S))
    assert len(fails) == 4
    os.remove(flag)
    _, _, ctx, fails2 = realizeE(instantiate(_sweep, 2, flag, S=S))
    assert fails2 == {}
    for d in clo.derivations:
        assert not is_failed(ctx[d.dref][0], S)


def test_keep_failures_until_forced(S: StorageSettings, tmp_path: Any) -> None:
    """retry_failed=False reuses a failure; force_rebuild builds again."""
    flag = os.path.join(tmp_path, "fail")
    open(flag, "w").close()
    _, clo, _, fails = realizeE(instantiate(_sweep, 1, flag, S=S))
    os.remove(flag)
    CALLS.clear()
    _, _, _, again = realizeE(instantiate(_sweep, 1, flag, S=S), retry_failed=False)
    assert again == fails
    assert CALLS == []
    t = clo.derivations[0].dref
    _, _, _, forced = realizeE(
        instantiate(_sweep, 1, flag, S=S), retry_failed=False, force_rebuild=[t]
    )
    assert forced == {}
    assert len(CALLS) == 1


def test_plain_realize_retries_after_failure(S: StorageSettings, tmp_path: Any) -> None:
    """A plain realize ignores recorded failures and builds."""
    flag = os.path.join(tmp_path, "fail")
    open(flag, "w").close()
    realizeE(instantiate(_sweep, 1, flag, S=S))
    os.remove(flag)
    res, _, ctx = realize(instantiate(_sweep, 1, flag, S=S))
    assert not is_failed(ctx[res[0]][0], S)


def test_promise_failure_is_captured(S: StorageSettings) -> None:
    """A missing promised file is a captured failure with the PromiseError text."""

    def stage() -> DRef:
        return mkdrv(
            {"name": "p", "out": [selfref, "need.txt"]}, match_latest(), build_wrapper(_no_promise)
        )

    d, clo = instantiate(stage, S=S)
    _, _, _, fails = realizeE(clo)
    assert fails[d].error == "PromiseError"
    assert "need.txt" in fails[d].message
    root = rref2path(fails[d].rref, S)
    assert [n for n in os.listdir(root) if n.startswith("out0")] != []


def test_mkdrvE_records_failure_under_plain_realize(S: StorageSettings) -> None:
    """mkdrvE: a plain realize still raises, and the failed build is recorded."""

    def stage() -> DRef:
        return mkdrvE(
            {"name": "train", "seed": 3, "flag": ""}, match_latest(), build_wrapper(_train)
        )

    d, clo = instantiate(stage, S=S)
    with pytest.raises(BuildError) as ei:
        realize(clo)
    (failed,) = drefrrefs_failed(d, {}, S)
    assert ei.value.__cause__ is not None
    assert ei.value.__cause__.__notes__ == [f"pylightnix: the failed build is recorded as {failed}"]
    assert drefrrefsC(d, {}, S) == []
    f = rref_failure(failed, S)
    assert f is not None
    assert (f.error, f.message) == ("ValueError", "diverged at seed 3")
    root = rref2path(failed, S)
    (out,) = [n for n in os.listdir(root) if n.startswith("out0")]
    assert _read(root, out, "partial.txt") == "seed 3"
    assert _read(root, "__pylightnix__", "build.log") == "training seed 3\n"
    assert not os.path.exists(os.path.join(root, TMP_LOG_NAME))


def test_reindex_keeps_failed_out_of_candidates(S: StorageSettings) -> None:
    """Rebuilding the index puts failed realizations back in their own index only."""
    _, clo, ctx, fails = realizeE(instantiate(_sweep, 2, S=S))
    for d in clo.derivations:
        base = dref2path_checked(d.dref, S)
        os.unlink(os.path.join(base, "index.tsv"))
    forget_index(S)
    assert store_reindex(S) == len(clo.derivations)
    for d in clo.derivations:
        cands = drefrrefs(d.dref, S)
        assert len(cands) == 1
        if d.dref in fails:
            assert drefrrefsC(d.dref, rrefctx(cands[0], S), S) == []
            assert drefrrefs_failed(d.dref, rrefctx(cands[0], S), S) == cands
        else:
            assert drefrrefsC(d.dref, rrefctx(cands[0], S), S) == ctx[d.dref]


def test_progress_events(S: StorageSettings) -> None:
    """realizeE reports a fail event per failed derivation, with its failed realization."""
    events: list[Any] = []
    _, clo, _, fails = realizeE(instantiate(_sweep, 1, S=S), progress=events.append)
    t, e = (d.dref for d in clo.derivations)
    assert [(ev.kind, ev.dref) for ev in events] == [
        ("plan", None),
        ("check", t),
        ("build", t),
        ("log", t),
        ("fail", t),
        ("check", e),
        ("fail", e),
        ("done", None),
    ]
    assert events[4].rrefs == (fails[t].rref,)
    assert events[4].extra == {"error": "ValueError: diverged at seed 0"}

"""explain(): why each stage of a closure would be reused or built."""

from __future__ import annotations

import logging
import os

import pytest

from pylightnix import (
    Build,
    Explanation,
    ProgressEvent,
    StorageSettings,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    explain,
    instantiate,
    match_latest,
    mkdrv,
    realize,
    realize1,
)
from pylightnix.types import DRef

_RUNS: list[str] = []


def _write(b: Build) -> None:
    _RUNS.append(build_cattrs(b).name)
    with open(os.path.join(build_outpath(b), "v.txt"), "w") as f:
        f.write(f"{build_cattrs(b).value}-{len(_RUNS)}")


def _train(b: Build) -> None:
    _RUNS.append(build_cattrs(b).name)
    with open(build_path(b, build_cattrs(b).data)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "model.txt"), "w") as f:
        f.write(text + "!")


def _pipeline(value: int = 1, n: int = 1) -> DRef:
    data = mkdrv({"name": "data", "value": value}, match_latest(n), build_wrapper(_write))
    return mkdrv({"name": "model", "data": [data, "v.txt"]}, match_latest(), build_wrapper(_train))


def _codes(exps: list[Explanation]) -> list[tuple[str, str, str]]:
    return [(e.name, e.decision, e.details["code"]) for e in exps]


def test_fresh_store_needs_every_stage_built(S: StorageSettings) -> None:
    """Nothing realized: the first stage has no realization, the next depends on a build."""
    clo = instantiate(_pipeline, S=S)
    exps = explain(clo)
    assert _codes(exps) == [
        ("data", "build", "no-realization"),
        ("model", "build", "dependency-rebuilt"),
    ]
    assert exps[0].reason == "no realization of this config exists"
    assert exps[1].reason == ("dependency 'data' will be built, so it is needed in a new context")


def test_explain_builds_nothing(S: StorageSettings) -> None:
    """explain runs no realizer and adds nothing to the store."""
    _RUNS.clear()
    explain(instantiate(_pipeline, S=S))
    assert _RUNS == []
    assert list(allrrefs(S)) == []


def test_realized_closure_is_reused(S: StorageSettings) -> None:
    """After a realize, every stage is reused and the chosen RRefs are named."""
    clo = instantiate(_pipeline, S=S)
    _, _, ctx = realize(clo)
    exps = explain(clo)
    assert _codes(exps) == [("data", "reuse", "matched"), ("model", "reuse", "matched")]
    assert [e.details["rrefs"] for e in exps] == [ctx[d.dref] for d in clo[1].derivations]
    assert exps[1].reason == f"matched 1 existing realization(s): {ctx[clo[1].targets[0]][0]}"


def test_config_change_explains_new_config_and_dependency(S: StorageSettings) -> None:
    """Changing the first stage's config: it was never realized, its user must follow."""
    realize(instantiate(_pipeline, 1, S=S))
    exps = explain(instantiate(_pipeline, 2, S=S))
    assert _codes(exps) == [
        ("data", "build", "no-realization"),
        ("model", "build", "dependency-rebuilt"),
    ]


def _data_only(value: int = 1) -> DRef:
    return mkdrv({"name": "data", "value": value}, match_latest(), build_wrapper(_write))


def test_new_dependency_realization_explains_context_change(S: StorageSettings) -> None:
    """A newer realization of a dependency makes the user's old context stale, naming both RRefs."""
    clo = instantiate(_pipeline, S=S)
    _, _, ctx1 = realize(clo)
    data, model = (d.dref for d in clo[1].derivations)
    d2 = realize1(instantiate(_data_only, S=S), force_rebuild=True)
    assert d2 != ctx1[data][0]
    exps = explain(clo)
    assert _codes(exps) == [
        ("data", "reuse", "matched"),
        ("model", "build", "context-changed"),
    ]
    assert exps[1].details["changes"] == [
        {"dref": data, "name": "data", "old": ctx1[data], "new": [d2]}
    ]
    assert exps[1].details["compared_with"] == ctx1[model][0]
    assert exps[1].reason == (
        f"1 realization(s) exist, but for another context: dependency 'data' now resolves "
        f"to {d2} (was {ctx1[data][0]})"
    )


def test_forced_stage_and_its_users_are_built(S: StorageSettings) -> None:
    """force_rebuild names the forced stage; its user follows because of it."""
    clo = instantiate(_pipeline, S=S)
    realize(clo)
    data = clo[1].derivations[0].dref
    assert _codes(explain(clo, force_rebuild=[data])) == [
        ("data", "build", "forced"),
        ("model", "build", "dependency-rebuilt"),
    ]
    assert _codes(explain(clo, force_rebuild=True)) == [
        ("data", "build", "forced"),
        ("model", "build", "forced"),
    ]


def test_unsatisfied_matcher_is_explained(S: StorageSettings) -> None:
    """match_latest(3) with one realization in the context is reported as unsatisfied."""
    realize(instantiate(_pipeline, 1, 1, S=S))
    exps = explain(instantiate(_pipeline, 1, 3, S=S))
    assert _codes(exps) == [
        ("data", "build", "matcher-unsatisfied"),
        ("model", "build", "dependency-rebuilt"),
    ]
    assert exps[0].reason.endswith("is not satisfied by the 1 realization(s) built in this context")
    assert exps[0].reason.startswith("matcher Match(key=BuildTimeKey(), trim=TopN(n=3))")


def test_realize_explain_true_logs_and_reports(
    S: StorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """realize(explain=True) logs one line per stage and sends "explain" progress events."""
    events: list[ProgressEvent] = []
    with caplog.at_level(logging.INFO, logger="pylightnix.realize"):
        rref = realize1(instantiate(_pipeline, S=S), explain=True, progress=events.append)
    assert [r.getMessage() for r in caplog.records] == [
        "build  data: no realization of this config exists",
        "build  model: dependency 'data' will be built, so it is needed in a new context",
    ]
    ex = [(e.name, e.extra["decision"]) for e in events if e.kind == "explain"]
    assert ex == [("data", "build"), ("model", "build")]
    assert rref in list(allrrefs(S))


def test_new_config_names_the_changed_keys(S: StorageSettings) -> None:
    """A never-realized config is compared with the closest stored one of its name: old -> new."""
    old, clo1 = instantiate(_data_only, 1, S=S)
    realize(clo1)
    (e,) = explain(instantiate(_data_only, 3, S=S))
    assert e.reason == (
        f"no realization of this config exists; changed from the closest stored 'data' ({old}): "
        "value: 1 -> 3"
    )
    assert e.details == {
        "code": "no-realization",
        "closest": old,
        "changes": [{"key": "value", "old": 1, "new": 3, "text": "value: 1 -> 3"}],
    }


def test_new_config_names_a_changed_dependency(S: StorageSettings) -> None:
    """A config whose dependency became another derivation of that name shows the dep's change."""
    realize(instantiate(_pipeline, 1, S=S))
    realize(instantiate(_data_only, 2, S=S))
    exps = explain(instantiate(_pipeline, 2, S=S))
    assert _codes(exps) == [("data", "reuse", "matched"), ("model", "build", "no-realization")]
    assert exps[1].reason.endswith(": data: data(value: 1 -> 2)")


def test_closest_prefers_fewest_changes_then_realized(S: StorageSettings) -> None:
    """Of several stored configs of the name, the one with the fewest differing keys is named."""

    def cfg(value: int, extra: int) -> DRef:
        return mkdrv(
            {"name": "data", "value": value, "extra": extra}, match_latest(), build_wrapper(_write)
        )

    realize(instantiate(cfg, 1, 1, S=S))
    near, clo = instantiate(cfg, 5, 2, S=S)
    realize(clo)
    instantiate(cfg, 9, 9, S=S)  # stored, never realized, differs in two keys
    (e,) = explain(instantiate(cfg, 5, 3, S=S))
    assert e.details["closest"] == near
    assert [c["text"] for c in e.details["changes"]] == ["extra: 2 -> 3"]

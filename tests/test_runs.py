"""Tests of runs(): realizations as experiment records (parameters, metrics, status, chosen)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from pylightnix import (
    DRef,
    RefError,
    Registry,
    Run,
    StorageSettings,
    autostage,
    instantiate,
    match_best,
    match_latest,
    realize,
    realizeE,
    runs,
    selfref,
)
from pylightnix.refs import dref_name
from pylightnix.runs import config_params
from pylightnix.store.chosen import chosen_records
from pylightnix.store.index import forget_index
from pylightnix.store.layout import dref2path
from pylightnix.store.query import drefrrefs, rrefmeta


@autostage
def dataset(size=10, out=[selfref, "data.txt"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.write("x" * size)


@autostage(nouts=2, matcher=match_best("accuracy.txt"))
def train(data=dataset, lr=0.1, opt={"momentum": 0.9}, rindex=0, build=None):  # type: ignore[no-untyped-def]  # noqa: B006
    if lr == 0.3 and rindex == 1:
        raise ValueError(f"diverged at lr={lr} seed={rindex}")
    out = build.outpaths[rindex]
    with open(os.path.join(out, "accuracy.txt"), "w") as f:
        f.write(str(round(0.5 + lr + rindex / 100, 4)))


@autostage(matcher=match_latest())
def report(lr=0.1, out=[selfref, "metrics.json"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        json.dump({"loss": 1 - lr, "eval": {"f1": lr}, "note": "text", "ok": True}, f)


@autostage
def summary(out=[selfref, "numbers.json"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        json.dump({"auc": 0.75, "nested": {"x": 1}}, f)


LRS = (0.1, 0.2, 0.3)


def _sweep(r: Registry) -> list[DRef]:
    return [train(r, lr=lr) for lr in LRS]


def _accuracy(lr: float, seed: int) -> float:
    return round(0.5 + lr + seed / 100, 4)


def test_sweep_runs_by_name(S: StorageSettings) -> None:
    """A 3 x 2 sweep with one failing output gives 6 runs, 3 chosen, the failure with its error."""
    realizeE(instantiate(_sweep, S=S))
    rs = runs("train", S=S)
    assert len(rs) == 6
    assert [r.build_start for r in rs] == sorted(r.build_start or 0.0 for r in rs)
    ok = [r for r in rs if r.status == "ok"]
    bad = [r for r in rs if r.status == "failed"]
    assert len(ok) == 5
    assert len(bad) == 1
    f = bad[0]
    assert f.params["lr"] == 0.3
    assert f.error == "ValueError: diverged at lr=0.3 seed=1"
    assert f.chosen is False
    assert f.metrics == {}
    assert {(r.params["lr"], r.metrics["accuracy"]) for r in ok} == {
        (0.1, _accuracy(0.1, 0)),
        (0.1, _accuracy(0.1, 1)),
        (0.2, _accuracy(0.2, 0)),
        (0.2, _accuracy(0.2, 1)),
        (0.3, _accuracy(0.3, 0)),
    }
    chosen = sorted((r.params["lr"], r.metrics["accuracy"]) for r in rs if r.chosen)
    assert [(0.1, _accuracy(0.1, 1)), (0.2, _accuracy(0.2, 1)), (0.3, _accuracy(0.3, 0))] == chosen
    for r in rs:
        assert r.name == "train"
        assert r.params == {"data": "dataset", "lr": r.params["lr"], "opt.momentum": 0.9}
        meta = rrefmeta(r.rref, S)
        assert r.build_start == meta["build_start"]
        assert r.duration == meta["build_stop"] - meta["build_start"]
        assert r.dref == DRef("dref:" + r.rref.split("-")[1] + "-train")


def test_closure_uses_its_matchers(S: StorageSettings) -> None:
    """Given a closure, runs lists its targets and asks their matchers which runs are chosen."""
    clo = instantiate(_sweep, S=S)
    realizeE(clo)
    by_closure = runs(clo)
    by_name = runs("train", S=S)
    assert [r.to_json() for r in by_name] == [r.to_json() for r in by_closure]
    # The closure's matcher decides even where no chosen record exists.
    for d in clo[0]:
        path = os.path.join(dref2path(d, S), "index.tsv")
        with open(path) as f:
            kept = [x for x in f.read().splitlines(keepends=True) if not x.startswith("C\t")]
        with open(path, "w") as f:
            f.writelines(kept)
        forget_index(S)
        assert chosen_records(S, d) == {}
    assert [r for r in runs("train", S=S) if r.chosen] == []
    assert len([r for r in runs(clo) if r.chosen]) == 3


def test_dref_picks_one_derivation(S: StorageSettings) -> None:
    """A DRef lists only that derivation's runs."""
    res, _, _, _ = realizeE(instantiate(_sweep, S=S))
    rs = runs(res[1], S=S)
    assert [r.params["lr"] for r in rs] == [0.2, 0.2]
    assert {res[1]} == {r.dref for r in rs}


def test_metrics_json_is_flattened(S: StorageSettings) -> None:
    """metrics.json numbers are the metrics, nested keys as a.b; text and booleans are left out."""
    realize(instantiate(report, S=S))
    (r,) = runs("report", S=S)
    assert r.metrics == {"loss": 0.9, "eval.f1": 0.1}
    assert r.params == {"lr": 0.1}
    assert r.chosen is True
    assert r.status == "ok"
    assert r.error is None


def test_metrics_file_names_a_json(S: StorageSettings) -> None:
    """Without metrics.json or a score file, metrics_file= names the JSON holding the metrics."""
    realize(instantiate(summary, S=S))
    assert runs("summary", S=S)[0].metrics == {}
    assert runs("summary", S=S, metrics_file="numbers.json")[0].metrics == {"auc": 0.75}


def test_custom_key_gives_a_score(S: StorageSettings) -> None:
    """A closure whose match_best ranks by a key function reports the key as the 'score' metric."""
    st = autostage(_scored, name="scored", matcher=match_best(_KeyLen()))
    clo = instantiate(st, S=S)
    realize(clo)
    assert runs(clo)[0].metrics == {"score": 10.0}
    assert runs("scored", S=S)[0].metrics == {}


class _KeyLen:
    def __call__(self, S: StorageSettings, rref: Any) -> float:
        return 10.0


def _scored(out=[selfref, "a.txt"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.write("a")


def test_to_json_is_json(S: StorageSettings) -> None:
    """Run.to_json() holds every field and survives json.dumps."""
    realize(instantiate(report, S=S))
    (r,) = runs("report", S=S)
    d = json.loads(json.dumps(r.to_json()))
    assert d == {
        "rref": r.rref,
        "dref": r.dref,
        "name": "report",
        "params": {"lr": 0.1},
        "metrics": {"loss": 0.9, "eval.f1": 0.1},
        "status": "ok",
        "error": None,
        "build_start": r.build_start,
        "duration": r.duration,
        "chosen": True,
    }
    assert isinstance(r, Run)


def test_unknown_name_has_no_runs(S: StorageSettings) -> None:
    """A valid name nothing is stored under has no runs."""
    assert runs("nothing", S=S) == []


def test_bad_what(S: StorageSettings) -> None:
    """What is neither a name, a DRef nor a closure is refused, naming it."""
    with pytest.raises(RefError) as e:
        runs("not a name!", S=S)
    assert str(e.value) == (
        "runs() expects a stage name, a DRef or what instantiate() returned, got 'not a name!'"
    )
    d = "dref:" + "0" * 32 + "-train"
    with pytest.raises(RefError) as e:
        runs(d, S=S)
    assert str(e.value) == (
        f"{d} is not in the store at {S.storage!r}: pass a DRef of a stage instantiated in "
        "this store, or its name"
    )


def test_chosen_follows_the_matcher(S: StorageSettings) -> None:
    """A rebuild that the matcher prefers moves the chosen mark (match_latest)."""
    clo = instantiate(report, S=S)
    realize(clo)
    realize(clo, force_rebuild=True)
    rs = runs("report", S=S)
    # Both builds have the same outputs: one realization, chosen.
    assert len(rs) == 1
    assert rs[0].chosen
    assert drefrrefs(rs[0].dref, S) == [rs[0].rref]


def test_config_params_shows_dependencies_by_name() -> None:
    """Dependencies show as names, files of them as name/file, promises and name are left out."""
    d = DRef("dref:" + "a" * 32 + "-mnist")
    cfg = {
        "name": "t",
        "__source__": "x",
        "data": d,
        "file": [d, "sub", "f.txt"],
        "out": [selfref, "o.txt"],
        "deps": [d, 1],
        "h": {"a": {"b": 2}, "c": []},
        "e": {},
    }
    assert config_params(cfg) == {
        "data": "mnist",
        "deps": ["mnist", 1],
        "e": {},
        "file": "mnist/sub/f.txt",
        "h.a.b": 2,
        "h.c": [],
    }
    assert dref_name(d) == "mnist"

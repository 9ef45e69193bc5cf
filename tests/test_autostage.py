"""Tests of @autostage: config derivation, dependencies, outputs, stable source hashing."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from pylightnix import (
    AutoStage,
    Build,
    BuildError,
    InstantiateError,
    StageAttrs,
    StorageSettings,
    autostage,
    drefcfg,
    drefrrefs,
    drefrrefs_failed,
    drefrrefsC,
    instantiate,
    instantiate_inplace,
    match_all,
    match_best,
    realize,
    realize1,
    realize_inplace,
    realizeE,
    realizeMany,
    rref2path,
    rref_failure,
    selfref,
    store_initialize,
)
from pylightnix.autostage import SOURCE_KEY, AutoRealizer, source_hash

SEEN: dict[str, Any] = {}


def _read(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


@autostage
def numbers(n: int = 3, out: Any = [selfref, "data.txt"]) -> None:  # noqa: B006
    with open(out, "w") as f:
        f.write(" ".join(str(i) for i in range(n)))


@autostage(name="trainer", nouts=3)
def train(
    data: Any = numbers,
    lr: float = 0.5,
    model: Any = [selfref, "sub", "model.txt"],  # noqa: B006
    rindex: int = 0,
    build: Build | None = None,
) -> None:
    SEEN["data"] = data
    SEEN["build"] = build
    with open(os.path.join(data.syspath, "data.txt")) as f:
        total = sum(int(x) for x in f.read().split())
    with open(model, "w") as f:
        f.write(f"{total * lr} {rindex}")


@autostage(nouts=2, matcher=match_all())
def pair(tag: str = "p", out: Any = [selfref, "x.txt"], rindex: int = 0) -> None:  # noqa: B006
    with open(out, "w") as f:
        f.write(f"{tag}{rindex}")


@autostage
def use_pair(src: Any = pair, out: Any = [selfref, "y.txt"]) -> None:  # noqa: B006
    SEEN["src"] = src
    with open(out, "w") as f:
        f.write(",".join(sorted(s.rref for s in src)))


@autostage
def nested(t: Any = train, o: Any = [selfref, "o"]) -> None:  # noqa: B006
    SEEN["t"] = t
    with open(o, "w") as f:
        f.write("ok")


@autostage(nouts=4, matcher=match_best("score.txt"))
def flaky(bad: Any = [1, 2], score: Any = [selfref, "score.txt"], rindex: int = 0) -> None:  # noqa: B006
    if rindex in bad:
        raise ValueError(f"seed {rindex} diverged")
    with open(score, "w") as f:
        f.write(str(rindex))


@autostage(nouts=4)
def flaky_all(bad: Any = [1, 2], score: Any = [selfref, "score.txt"], rindex: int = 0) -> None:  # noqa: B006
    if rindex in bad:
        raise ValueError(f"seed {rindex} diverged")
    with open(score, "w") as f:
        f.write(str(rindex))


@autostage
def after_flaky(m: Any = flaky_all, out: Any = [selfref, "o.txt"]) -> None:  # noqa: B006
    SEEN["after_flaky"] = m


def test_config_holds_defaults_name_and_source(S: StorageSettings) -> None:
    """The config is the defaults plus the name and the source hash."""
    d, _ = instantiate(numbers, S=S)
    assert drefcfg(d, S) == {
        "name": "numbers",
        SOURCE_KEY: numbers.source,
        "n": 3,
        "out": [d, "data.txt"],
    }


def test_decorator_name_and_dependency_dref(S: StorageSettings) -> None:
    """The decorator's name names the derivation; a stage default becomes the dependency's DRef."""
    d, c = instantiate(train, S=S)
    cfg = drefcfg(d, S)
    dep = c.derivations[0].dref
    assert d.endswith("-trainer")
    assert cfg["data"] == dep
    assert dep.endswith("-numbers")
    assert [x.dref for x in c.derivations] == [dep, d]


def test_overrides_make_a_new_derivation(S: StorageSettings) -> None:
    """Call-time overrides change the DRef; the same overrides give the same DRef."""
    d0, _ = instantiate(train, S=S)
    d1, _ = instantiate(train, lr=0.1, S=S)
    d2, _ = instantiate(train, lr=0.1, S=S)
    assert d0 != d1
    assert d1 == d2
    assert drefcfg(d1, S)["lr"] == 0.1


def test_unknown_override_is_an_error(S: StorageSettings) -> None:
    """An override naming no parameter is refused with the known parameters listed."""
    with pytest.raises(InstantiateError) as ei:
        instantiate(train, lrr=0.1, S=S)
    assert str(ei.value) == (
        "autostage 'trainer' has no config parameter 'lrr' "
        "(its parameters with defaults: data, lr, model)"
    )


def test_build_gets_deps_selfrefs_rindex_and_build(S: StorageSettings) -> None:
    """The function gets the dependency's attrs, concrete output paths, rindex and the Build."""
    rrefs = realizeMany(instantiate(train, S=S))
    assert len(rrefs) == 3
    texts = sorted(_read(rref2path(r, S), "sub", "model.txt") for r in rrefs)
    assert texts == ["1.5 0", "1.5 1", "1.5 2"]
    data = SEEN["data"]
    assert isinstance(data, StageAttrs)
    assert data.n == 3
    assert data.rref.endswith("-numbers")
    assert data.syspath == rref2path(data.rref, S)
    assert data.out == os.path.join(data.syspath, "data.txt")
    assert isinstance(SEEN["build"], Build)


def test_several_matched_realizations_arrive_as_a_list(S: StorageSettings) -> None:
    """A dependency whose matcher chose two realizations arrives as a list of two attrs."""
    r = realize1(instantiate(use_pair, S=S))
    src = SEEN["src"]
    assert isinstance(src, list)
    assert sorted(s.out for s in src) == sorted(
        os.path.join(rref2path(x, S), "x.txt") for x in drefrrefs(src[0].dref, S)
    )
    assert _read(rref2path(r, S), "y.txt") == ",".join(sorted(s.rref for s in src))


def test_nested_dependency_attrs(S: StorageSettings) -> None:
    """A dependency's own dependency is again an attrs object (here: a list of three)."""
    realize(instantiate(nested, S=S))
    t = SEEN["t"]
    assert len(t) == 3
    assert {x.data.n for x in t} == {3}


def test_reuse_does_not_call_the_function(S: StorageSettings) -> None:
    """A second realize reuses the realizations."""
    a = realizeMany(instantiate(train, S=S))
    SEEN.clear()
    b = realizeMany(instantiate(train, S=S))
    assert a == b
    assert SEEN == {}


def test_dref_default_is_a_dependency(S: StorageSettings) -> None:
    """A DRef given as an override is a dependency of the new derivation."""

    def pipeline() -> Any:
        d = numbers(n=5)
        return train(data=d)

    rr = realizeMany(instantiate(pipeline, S=S))
    texts = sorted(_read(rref2path(r, S), "sub", "model.txt") for r in rr)
    assert texts == ["5.0 0", "5.0 1", "5.0 2"]


def test_inplace_api() -> None:
    """An autostage works with instantiate_inplace / realize_inplace."""
    store_initialize()
    d = instantiate_inplace(numbers)
    r = realize_inplace(d)
    assert _read(rref2path(r), "data.txt") == "0 1 2"


def test_stage_and_realizer_pickle() -> None:
    """An autostage and its realizer pickle by reference to the module attribute."""
    assert pickle.loads(pickle.dumps(train)) is train
    assert pickle.loads(pickle.dumps(AutoRealizer(train))) == AutoRealizer(train)


def test_parameter_without_default_needs_a_value_at_the_call(S: StorageSettings) -> None:
    """A parameter without a default (as the original allowed) is given when calling the stage."""

    def f(x: int, y: int = 1) -> None:
        pass

    st = autostage(f)
    assert st.config_params == ("x", "y")
    with pytest.raises(InstantiateError) as ei:
        instantiate(st, S=S)
    assert str(ei.value) == (
        "autostage 'f' needs a value for its parameter 'x', which has no default: call it "
        "as f(x=...) or give the function parameter a default"
    )
    d, _ = instantiate(st, x=3, S=S)
    assert drefcfg(d, S)["x"] == 3


def test_parameter_without_default_takes_the_decorator_value(S: StorageSettings) -> None:
    """@autostage(x=...) gives a parameter without a default its value, as in the original."""

    def g(x: int, build: Any = None) -> None:
        pass

    st = autostage(x=5)(g)
    d, _ = instantiate(st, S=S)
    assert drefcfg(d, S)["x"] == 5
    d2, _ = instantiate(st, x=6, S=S)
    assert drefcfg(d2, S)["x"] == 6


def test_reserved_parameter_name_is_refused() -> None:
    """A parameter called 'name' clashes with the config's name."""

    def g(name: str = "x") -> None:
        pass

    with pytest.raises(InstantiateError, match="parameter 'name', a name reserved"):
        autostage(g)


def test_function_without_source_is_refused() -> None:
    """A function defined by exec() has no source to hash: the error says where to define it."""
    ns: dict[str, Any] = {}
    exec("def h(a=1):\n    return a\n", ns)
    with pytest.raises(InstantiateError, match="define the function in a file"):
        autostage(ns["h"])


class _V1:
    @staticmethod
    def fn(x: int = 1) -> int:
        """Doc."""
        return x + 1  # comment


class _V2:
    @staticmethod
    def fn(x: int = 2) -> int:

        return x + 1


class _V3:
    @staticmethod
    def fn(x: int = 1) -> int:
        return x + 2


def test_source_hash_ignores_comments_docstrings_defaults() -> None:
    """Decorators, comments, docstrings, formatting and defaults leave the hash; the body not."""
    h1 = source_hash(_V1.fn)
    assert h1 == source_hash(_V2.fn)
    assert h1 != source_hash(_V3.fn)
    assert len(h1) == 32


def test_sourcedeps_change_the_hash() -> None:
    """A function listed in sourcedeps is hashed too."""
    assert source_hash(numbers.f, [train]) != source_hash(numbers.f)
    assert isinstance(train, AutoStage)


SCRIPT = """
import os, sys
from pylightnix import autostage, selfref, mkSS, instantiate, realize1, drefrrefs

@autostage
def step(k=2, out=[selfref, "v.txt"]):
    # BODY
    with open(out, "w") as f:
        f.write(f"{k * FACTOR} {os.getpid()}")  # a rebuild gives another RRef

S = mkSS(sys.argv[1])
d, clo = instantiate(step, S=S)
r = realize1(clo)
print(d, r, len(drefrrefs(d, S)))
"""


def _run(script: str, tmp: str, S: StorageSettings) -> list[str]:
    path = os.path.join(tmp, "stage_script.py")
    with open(path, "w") as f:
        f.write(script)
    out = subprocess.run(
        [sys.executable, path, S.root],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    return out.stdout.split()


def test_cache_hits_across_processes_and_misses_after_edit(
    S: StorageSettings, tmp_path: Any
) -> None:
    """Two Python processes reuse one realization; a changed body rebuilds, a comment does not."""
    base = textwrap.dedent(SCRIPT).replace("FACTOR", "10")
    d1, r1, n1 = _run(base, str(tmp_path), S)
    d2, r2, n2 = _run(base, str(tmp_path), S)
    assert n1 == "1"
    assert (d2, r2, n2) == (d1, r1, "1")
    d3, r3, n3 = _run(base.replace("# BODY", "# another comment"), str(tmp_path), S)
    assert (d3, r3, n3) == (d1, r1, "1")
    d4, r4, n4 = _run(base.replace("k * 10", "k * 11"), str(tmp_path), S)
    assert d4 != d1
    assert r4 != r1
    assert n4 == "1"


def test_ml_pipeline_doc_runs(tmp_path: Any) -> None:
    """The python blocks of docs/ml-pipeline.md run as one script, twice, with equal results."""
    import re

    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "ml-pipeline.md")
    blocks = re.findall(r"```python\n(.*?)```", _read(doc), re.S)
    assert len(blocks) == 9
    script = os.path.join(tmp_path, "ml_pipeline.py")
    with open(script, "w") as f:
        f.write("\n".join(blocks))
    env = {**os.environ, "PYLIGHTNIX_ROOT": os.path.join(tmp_path, "root")}
    runs = [
        subprocess.run(
            [sys.executable, script], check=True, capture_output=True, text=True, env=env
        ).stdout.splitlines()
        for _ in range(2)
    ]
    assert runs[0][0].startswith("test mse: 0.0")
    assert runs[0][:4] == runs[1][:4]
    assert runs[0][4].endswith("-train FloatingPointError training diverged (lr=5.0)")
    assert " DependencyFailed not built: its dependency " in runs[0][5]


def test_nouts_failed_outputs_recorded_one_by_one(S: StorageSettings) -> None:
    """Under realizeE, failing outputs of a nouts build are recorded alone; the rest is used."""
    d, clo = instantiate(flaky, S=S)
    _, _, ctx, fails = realizeE(clo)
    assert fails == {}
    (best,) = ctx[d]
    assert _read(rref2path(best, S), "score.txt") == "3"
    failed = [rref_failure(r, S) for r in drefrrefs_failed(d, {}, S)]
    assert sorted((f.error, f.message) for f in failed if f is not None) == [
        ("ValueError", "seed 1 diverged"),
        ("ValueError", "seed 2 diverged"),
    ]
    assert len(drefrrefsC(d, {}, S)) == 2


def test_nouts_failed_outputs_leave_matcher_unsatisfied(S: StorageSettings) -> None:
    """With match_latest(4), two failed outputs fail the derivation and its dependant."""
    d, clo = instantiate(after_flaky, S=S)
    dep = clo.derivations[0].dref
    SEEN.clear()
    _, _, _, fails = realizeE(clo)
    assert set(fails) == {dep, d}
    assert fails[dep].message == "2 output(s) of the build failed; the first: seed 1 diverged"
    assert fails[d].dependency == fails[dep].rref
    assert SEEN == {}


def test_nouts_all_outputs_failing_is_one_failed_build(S: StorageSettings) -> None:
    """When every output fails, the whole build is one failed realization."""
    d, clo = instantiate(flaky, bad=[0, 1, 2, 3], S=S)
    _, _, _, fails = realizeE(clo)
    assert (fails[d].error, fails[d].message) == ("ValueError", "seed 0 diverged")
    assert drefrrefs_failed(d, {}, S) == [fails[d].rref]


def test_nouts_failure_under_plain_realize_raises(S: StorageSettings) -> None:
    """A plain realize stops at the first failing output and stores nothing."""
    d, clo = instantiate(flaky, S=S)
    with pytest.raises(BuildError, match="seed 1 diverged"):
        realize(clo)
    assert drefrrefs(d, S) == []


HELPERS = """
import functools

SCALE = 2


def clean(x):
    return x * SCALE


@functools.lru_cache
def other(x):
    return x + 1


class Norm:
    def apply(self, x):
        return clean(x) - 1
"""

PROJECT = """
import json

import helpers
from helpers import Norm, other
from pylightnix import autostage, selfref


@autostage
def uses_clean(out=[selfref, "a.txt"]):
    with open(out, "w") as f:
        f.write(str(helpers.clean(3)))


@autostage
def uses_other(out=[selfref, "b.txt"]):
    with open(out, "w") as f:
        f.write(json.dumps(other(3)))


@autostage
def uses_norm(out=[selfref, "c.txt"]):
    with open(out, "w") as f:
        f.write(str(Norm().apply(3)))


@autostage
def after_clean(dep=uses_clean, out=[selfref, "d.txt"]):
    with open(out, "w") as f:
        f.write("after")


def everything():
    return [uses_clean(), uses_other(), uses_norm(), after_clean()]
"""


def _plx(root: str, *args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")}
    return subprocess.run(
        [sys.executable, "-m", "pylightnix", "--store", root, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def _project(path: Any) -> str:
    """A test project: helpers.py and pipeline.py in the folder ``path``."""
    os.makedirs(path)
    for name, text in (("helpers.py", HELPERS), ("pipeline.py", PROJECT)):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def _realized(root: str, project: str) -> dict[str, str]:
    out = _plx(root, "realize", f"{project}/pipeline.py:everything", "--json", "--no-progress",
               cwd=project)  # fmt: skip
    return {d.rsplit("-", 1)[1]: rs[0] for d, rs in json.loads(out.stdout)["context"].items()}


def test_editing_a_helper_rebuilds_only_its_users(tmp_path: Any) -> None:
    """Two fresh interpreters: editing helpers.clean rebuilds the stages that call it (and
    their dependants), not the others; explain names the changed function."""
    project = _project(tmp_path / "project")
    root = str(tmp_path / "plx")
    _plx(root, "init", cwd=project)
    first = _realized(root, project)
    assert _realized(root, project) == first
    with open(os.path.join(project, "helpers.py"), "w") as f:
        f.write(HELPERS.replace("return x * SCALE", "return x * SCALE * 10"))
    exps = json.loads(_plx(root, "explain", "pipeline.py:everything", "--json", cwd=project).stdout)
    decisions = {e["name"]: (e["decision"], e["details"]["code"]) for e in exps}
    assert decisions == {
        "uses_clean": ("build", "no-realization"),
        "uses_other": ("reuse", "matched"),
        "uses_norm": ("build", "no-realization"),
        "after_clean": ("build", "dependency-rebuilt"),
    }
    clean = next(e for e in exps if e["name"] == "uses_clean")
    assert [c["text"] for c in clean["details"]["changes"]] == ["function helpers.clean changed"]
    norm = next(e for e in exps if e["name"] == "uses_norm")
    assert [c["text"] for c in norm["details"]["changes"]] == ["function helpers.clean changed"]
    second = _realized(root, project)
    assert second["uses_other"] == first["uses_other"]
    for name in ("uses_clean", "uses_norm", "after_clean"):
        assert second[name] != first[name]
    with open(os.path.join(project, "helpers.py"), "w") as f:
        f.write(HELPERS.replace("SCALE = 2", "SCALE = 3"))
    exps = json.loads(_plx(root, "explain", "pipeline.py:everything", "--json", cwd=project).stdout)
    clean = next(e for e in exps if e["name"] == "uses_clean")
    assert clean["details"]["changes"][0]["text"] == "function helpers.SCALE changed"


def test_track_code_finds_user_code_and_versions(tmp_path: Any) -> None:
    """track_code lists the user's functions, classes and constants; not stdlib or pylightnix."""
    project = _project(tmp_path / "p2")
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import pipeline;"
        "from pylightnix.autostage import track_code;"
        "print(json.dumps([sorted(track_code(s.f)[0]) for s in "
        "(pipeline.uses_clean, pipeline.uses_other, pipeline.uses_norm, pipeline.after_clean)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, project], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == [
        ["helpers.SCALE", "helpers.clean"],
        ["helpers.other"],
        ["helpers.Norm", "helpers.SCALE", "helpers.clean"],
        [],
    ]


def _uses_packages() -> Any:
    return pytest.approx(textwrap.dedent(" 1").strip()), os.sep, _read


def test_track_code_records_installed_versions_not_stdlib() -> None:
    """An installed package gives its version; the standard library gives nothing."""
    from importlib.metadata import version

    from pylightnix.autostage import track_code

    code, versions = track_code(_uses_packages)
    assert versions == {"pytest": version("pytest")}
    assert list(code) == ["tests.test_autostage._read"]

"""Tests of realize/build.py: the seed's Build helpers, used from inside real builds."""

from __future__ import annotations

import json
import os
import pickle
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pylightnix import (
    Build,
    BuildError,
    DRef,
    Registry,
    StorageSettings,
    build_cattrs,
    build_config,
    build_context,
    build_deref,
    build_deref_,
    build_name,
    build_outpath,
    build_outpaths,
    build_path,
    build_paths,
    build_wrapper,
    build_wrapper_,
    dirro,
    dirrw,
    instantiate,
    match_all,
    match_only,
    mkdrv,
    realize,
    realize1,
    rref2path,
    selfref,
)
from pylightnix.errors import RefError


def _two(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "v.txt"), "w") as f:
            f.write(f"{build_cattrs(b).base + i}")


def _inspect(b: Build) -> None:
    """Record what every helper answers inside a build, into report.json."""
    c = build_config(b)
    src = c["src"]
    rep: dict[str, Any] = {
        "name": build_name(b),
        "dref": b.dref,
        "context": build_context(b),
        "cattrs_out": build_cattrs(b).out,
        "deref_": build_deref_(b, src[0]),
        "paths": build_paths(b, src),
        "self_path": build_path(b, c["out"]),
        "self_dref_path": build_path(b, [b.dref, "out.txt"]),
        "outpaths": build_outpaths(b),
        "args": dict(b.realize_args),
    }
    for p in rep["paths"]:
        with open(p) as f:
            rep.setdefault("values", []).append(f.read())
    errs = {}
    for name, call in (
        ("deref_one", lambda: build_deref(b, src[0])),
        ("path_many", lambda: build_path(b, src)),
        ("foreign", lambda: build_deref_(b, DRef("dref:" + "0" * 32 + "-nope"))),
        ("not_refpath", lambda: build_paths(b, ["not-a-dref", "x"])),
    ):
        try:
            call()
        except RefError as e:
            errs[name] = str(e)
    rep["errors"] = errs
    with open(build_path(b, c["out"]), "w") as f:
        json.dump(rep, f)


def _stage(r: Registry) -> list[DRef]:
    a = mkdrv({"name": "two", "base": 10}, match_all(), build_wrapper(_two, nouts=2), r=r)
    u = mkdrv(
        {"name": "user", "src": [a, "v.txt"], "out": [selfref, "out.txt"]},
        match_only(),
        build_wrapper(_inspect),
        r=r,
    )
    return [a, u]


def test_helpers_inside_a_build(S: StorageSettings) -> None:
    """build_* answer the derivation, config, context, dependency paths and own outputs."""
    (a, u), clo = instantiate(_stage, S=S)
    _, _, ctx = realize(clo, realize_args={u: {"k": 1}})
    (ru,) = ctx[u]
    with open(os.path.join(rref2path(ru, S), "out.txt")) as f:
        rep = json.load(f)
    ra = sorted(ctx[a])
    assert rep["name"] == "user"
    assert rep["dref"] == u
    assert rep["context"] == {a: ra}
    assert rep["cattrs_out"] == [u, "out.txt"]
    assert rep["deref_"] == ra
    assert rep["paths"] == [os.path.join(rref2path(r, S), "v.txt") for r in ra]
    assert sorted(rep["values"]) == ["10", "11"]
    (out,) = rep["outpaths"]
    assert rep["self_path"] == rep["self_dref_path"] == os.path.join(out, "out.txt")
    assert out.startswith(S.tmpdir + os.sep)
    assert rep["args"] == {"k": 1}
    assert rep["errors"] == {
        "deref_one": f"{a} has 2 matched realizations in this build; use build_deref_()",
        "path_many": f"{[a, 'v.txt']!r} resolves to 2 paths in {u}; use build_paths()",
        "foreign": f"dref:{'0' * 32}-nope is not a dependency of {u}: mention it in the "
        "config to depend on it",
        "not_refpath": "['not-a-dref', 'x'] is not a RefPath: expected [DRef, 'sub', 'path']",
    }


def _single_dep(b: Build) -> None:
    (d,) = build_context(b)
    with open(os.path.join(build_outpath(b), "from.txt"), "w") as f:
        f.write(build_deref(b, d))


def test_build_deref_of_a_single_realization(S: StorageSettings) -> None:
    """build_deref returns the one realization of a dependency."""

    def stage(r: Registry) -> DRef:
        a = mkdrv({"name": "a", "base": 1}, match_only(), build_wrapper(_two), r=r)
        return mkdrv({"name": "b", "a": a}, match_only(), build_wrapper(_single_dep), r=r)

    b, clo = instantiate(stage, S=S)
    _, _, ctx = realize(clo)
    with open(os.path.join(rref2path(ctx[b][0], S), "from.txt")) as f:
        assert [f.read()] == [r for d, rs in ctx.items() if d != b for r in rs]


def test_build_outpath_refuses_multiple_outputs(S: StorageSettings) -> None:
    """build_outpath on a nouts=2 build raises BuildError pointing to build_outpaths."""

    def one(b: Build) -> None:
        build_outpath(b)

    d, clo = instantiate(mkdrv, {"name": "m"}, match_all(), build_wrapper(one, nouts=2), S=S)
    with pytest.raises(BuildError) as ei:
        realize(clo)
    assert isinstance(ei.value.__cause__, BuildError)
    assert str(ei.value.__cause__) == f"build_outpath: {d} has 2 outputs; use build_outpaths(b)"


@pytest.mark.parametrize("bad", [0, -1, 1.0, "2"])
def test_nouts_must_be_positive(bad: Any) -> None:
    """build_wrapper(f, nouts) refuses a bad count by name."""
    with pytest.raises(BuildError) as ei:
        build_wrapper(_two, nouts=bad)
    assert str(ei.value) == f"build_wrapper(nouts={bad!r}): nouts must be a positive int"
    with pytest.raises(BuildError):
        build_wrapper_(_two, Build, nouts=bad)


@dataclass
class CountingBuild(Build):
    """A Build subclass carrying extra state through the build."""

    notes: list[str] | None = None


def _sub(b: CountingBuild) -> None:
    assert type(b) is CountingBuild
    b.notes = ["seen"]
    with open(os.path.join(build_outpath(b), "cls.txt"), "w") as f:
        f.write(f"{type(b).__name__}:{b.notes}")


def test_build_wrapper_with_a_build_subclass(S: StorageSettings) -> None:
    """build_wrapper_(f, Sub) hands f an instance of Sub."""
    rref = realize1(
        instantiate(mkdrv, {"name": "sub"}, match_only(), build_wrapper_(_sub, CountingBuild), S=S)
    )
    with open(os.path.join(rref2path(rref, S), "cls.txt")) as f:
        assert f.read() == "CountingBuild:['seen']"


def test_wrappers_pickle_with_a_readable_repr() -> None:
    """build_wrapper of a module-level function pickles and shows the function's name."""
    for w in (build_wrapper(_two, nouts=3), build_wrapper_(_sub, CountingBuild)):
        w2 = pickle.loads(pickle.dumps(w))
        assert w2 == w
    assert repr(build_wrapper(_two, nouts=3)) == "build_wrapper(_two, nouts=3)"


def test_dirrw_and_dirro(tmp_path: Path) -> None:
    """dirro removes write bits (exec kept); dirrw gives them back to the owner."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    os.chmod(tmp_path / "d" / "x", 0o755)
    dirro(str(tmp_path / "d"))
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "x").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o555
    dirrw(str(tmp_path / "d"))
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "x").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o755

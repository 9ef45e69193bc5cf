"""Tests of realize/registry.py: mkdrv, instantiate, closures and their guards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylightnix import (
    Build,
    InstantiateError,
    Registry,
    StorageSettings,
    build_wrapper,
    current_registry,
    fsinit,
    instantiate,
    match_only,
    mkconfig,
    mkdrv,
    mkSS,
    realize,
)
from pylightnix.config import config_hash, selfref
from pylightnix.errors import ConfigError, RefError
from pylightnix.realize.registry import closure_of, find_drefs, get_current_registry
from pylightnix.store.query import alldrefs, drefcfg_
from pylightnix.types import DRef
from tests.realize.dagkit import Counting, calls


def _noop(b: Build) -> None:
    pass


W = build_wrapper(_noop)


def _chain(r: Registry) -> DRef:
    a = mkdrv({"name": "a"}, match_only(), W, r=r)
    b = mkdrv({"name": "b", "a": a}, match_only(), W, r=r)
    return mkdrv({"name": "c", "b": b, "a": a}, match_only(), W, r=r)


def test_instantiate_stores_configs_and_never_builds(S: StorageSettings, tmp_path: Path) -> None:
    """instantiate writes every derivation's config and runs no realizer."""
    (tmp_path / "c").mkdir()

    def stage(r: Registry) -> DRef:
        return mkdrv({"name": "x", "v": 1}, match_only(), Counting(str(tmp_path / "c")), r=r)

    d, clo = instantiate(stage, S=S)
    assert list(alldrefs(S)) == [d]
    assert drefcfg_(d, S) == mkconfig({"name": "x", "v": 1})
    assert d == f"dref:{config_hash(mkconfig({'v': 1, 'name': 'x'}))}-x"
    assert calls(str(tmp_path / "c")) == []
    assert os.listdir(S.tmpdir) == []
    assert (clo.targets, clo.result, clo.S) == ((d,), d, S)


def test_closure_is_dependencies_first_and_minimal(S: StorageSettings) -> None:
    """The closure of a target holds it and its deps, in dependency order, and nothing else."""

    def stage(r: Registry) -> DRef:
        mkdrv({"name": "unrelated"}, match_only(), W, r=r)
        return _chain(r)

    c, clo = instantiate(stage, S=S)
    names = [d.dref.rsplit("-", 1)[1] for d in clo.derivations]
    assert names == ["a", "b", "c"]
    assert clo.derivations[-1].dref == c
    assert clo.index[c].deps == tuple(sorted(clo.index[c].deps))
    assert len(clo.index[c].deps) == 2


def test_mkdrv_outside_instantiate_is_refused() -> None:
    """mkdrv without a registry explains how to run a stage."""
    with pytest.raises(InstantiateError) as ei:
        mkdrv({"name": "x"}, match_only(), W)
    assert str(ei.value) == (
        "mkdrv was called outside instantiate(): run the stage with "
        "instantiate(stage, ...) or instantiate_inplace(stage, ...), or pass r=Registry(S)"
    )


def test_mkdrv_refuses_non_callables_and_bad_configs(S: StorageSettings) -> None:
    """A matcher or realizer that is not callable, or a non-JSON config, is refused."""
    r = Registry(S)
    with pytest.raises(InstantiateError, match=r"^mkdrv needs a callable matcher and realizer"):
        mkdrv({"name": "x"}, "latest", W, r=r)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        mkdrv({"name": "x", "t": (1,)}, match_only(), W, r=r)
    assert list(alldrefs(S)) == []


def test_drefs_of_another_registry_are_rejected(S: StorageSettings) -> None:
    """A config mentioning a DRef not registered in this registry is an InstantiateError."""
    a, _ = instantiate(mkdrv, {"name": "a"}, match_only(), W, S=S)

    def user(r: Registry) -> DRef:
        return mkdrv({"name": "u", "dep": a}, match_only(), W, r=r)

    with pytest.raises(InstantiateError) as ei:
        instantiate(user, S=S)
    cfg_hash = config_hash(mkconfig({"name": "u", "dep": a}))
    assert str(ei.value) == (
        f"config of dref:{cfg_hash}-u mentions {a}, which is not registered in this registry: "
        "instantiate the dependency's stage inside the same instantiate() call "
        "(DRefs from another registry or a hand-written DRef cannot be built)"
    )
    assert ei.value.dep == a  # type: ignore[attr-defined]


def test_recursive_instantiate_on_the_same_registry_is_refused(S: StorageSettings) -> None:
    """Calling instantiate inside a stage on the same registry raises InstantiateError."""

    def outer(r: Registry) -> DRef:
        inner, _ = instantiate(mkdrv, {"name": "in"}, match_only(), W, r=r)
        return inner  # type: ignore[no-any-return]

    with pytest.raises(InstantiateError) as ei:
        instantiate(outer, S=S)
    assert str(ei.value).startswith("instantiate() called recursively on Registry(S=")
    assert str(ei.value).endswith(
        "call the inner stage function directly (it registers into the same registry)"
    )
    r = Registry(S)
    instantiate(mkdrv, {"name": "ok"}, match_only(), W, r=r)
    assert r.in_instantiate is False


def test_instantiate_refuses_a_registry_of_another_store(tmp_path: Path) -> None:
    """Passing both r= and a different S= is a contradiction."""
    S1 = fsinit(mkSS(str(tmp_path / "1")))
    S2 = fsinit(mkSS(str(tmp_path / "2")))
    with pytest.raises(InstantiateError) as ei:
        instantiate(_chain, r=Registry(S1), S=S2)
    assert str(ei.value) == (
        f"instantiate got S={S2.storage!r} and a registry of {S1.storage!r}: pass one of them"
    )


def test_stages_without_r_use_the_current_registry(S: StorageSettings) -> None:
    """A stage with no r parameter registers through current_registry()."""

    def stage() -> DRef:
        assert get_current_registry() is not None
        return mkdrv({"name": "implicit"}, match_only(), W)

    d, clo = instantiate(stage, S=S)
    assert clo.targets == (d,)
    assert get_current_registry() is None
    r = Registry(S)
    with current_registry(r):
        d2 = mkdrv({"name": "implicit"}, match_only(), W)
    assert d2 == d and list(r.builders) == [d]


def test_reregistration_keeps_place_and_takes_new_callables(S: StorageSettings) -> None:
    """Registering the same config twice keeps one derivation with the latest callables."""
    r = Registry(S)
    d1 = mkdrv({"name": "x"}, match_only(), W, r=r)
    w2 = build_wrapper(_noop, nouts=2)
    d2 = mkdrv({"name": "x"}, match_only(), w2, r=r)
    assert d1 == d2
    assert r.builders[d1].realizer is w2
    assert repr(r) == f"Registry(S={S.storage!r}, derivations=1)"


def test_find_drefs_and_closure_of(S: StorageSettings) -> None:
    """Stage results may be containers of DRefs; unknown targets are refused."""
    r = Registry(S)
    c, _ = instantiate(_chain, r=r)
    a = next(d for d in r.builders if d.endswith("-a"))
    assert find_drefs({"x": [c, (a, "text")], "y": c}) == [c, a]
    assert [d.dref for d in closure_of(r, [a]).derivations] == [a]
    ghost = DRef("dref:" + "0" * 32 + "-ghost")
    with pytest.raises(RefError) as ei:
        closure_of(r, [ghost])
    assert str(ei.value) == f"{ghost} is not registered in {r!r}: instantiate its stage first"


def test_a_closure_realizes_after_its_registry_grows(S: StorageSettings) -> None:
    """Two instantiates on one registry: the second closure includes the first's deps."""
    r = Registry(S)
    c, clo1 = instantiate(_chain, r=r)

    def top(r: Registry) -> DRef:
        return mkdrv({"name": "top", "c": c}, match_only(), W, r=r)

    t, clo2 = instantiate(top, r=r)
    _, _, ctx = realize(clo2)
    assert sorted(ctx) == sorted([*r.builders])
    assert realize(clo1)[2] == {k: v for k, v in ctx.items() if k != t}


def test_mkdrv_finds_deps_and_promises_wherever_the_config_holds_them(S: StorageSettings) -> None:
    """Deps and promises come out of nested values, and look-alike strings and keys are none."""
    r = Registry(S)
    a = mkdrv({"name": "a"}, match_only(), W, r=r)
    b = mkdrv({"name": "b"}, match_only(), W, r=r)
    cfg = {
        "name": "c",
        "deep": {"list": [1, [a, "f.txt"]], a: "a key is no dep"},
        "text": f"x{b}",
        "out": [selfref, "model.bin"],
        "quoted": f'"{selfref}"',
    }
    c = mkdrv(cfg, match_only(), W, r=r)
    assert r.builders[c].deps == (a,)
    assert r.builders[c].promises == (("model.bin",),)
    plain = mkdrv({"name": "d", "s": "dref: <self>"}, match_only(), W, r=r)
    assert (r.builders[plain].deps, r.builders[plain].promises) == ((), ())
    with pytest.raises(ConfigError, match=r"that names no file"):
        mkdrv({"name": "e", "p": [selfref]}, match_only(), W, r=r)

"""The original's signatures and behaviours accepted by this package's own functions."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    BuildError,
    InstantiateError,
    RefError,
    Registry,
    StorageSettings,
    StoreError,
    build_outpath,
    build_wrapper,
    copyclosure,
    drefcfg,
    du,
    fetchlocal,
    fsinit,
    fsstorage,
    instantiate,
    linkdref,
    linkrref,
    linkrrefs,
    match_all,
    mkconfig,
    mkdrv,
    mkfile,
    mklens,
    mknode,
    mkSS,
    realize,
    realize1,
    realizeMany,
    rref2path,
    rrefbstart,
    selfref,
)
from pylightnix.store.links import timestring


def _w(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "f"), "w") as f:
        f.write("x")


def test_registry_first_spellings(S: StorageSettings) -> None:
    """mknode(r, cfg, artifacts), mkdrv(m, c, M, R) and mkfile(m, ...) register like ours."""

    def old_style(r: Registry | None = None) -> Any:
        assert r is not None
        a = mknode(r, {"name": "a"}, {"f.txt": b"bytes"})
        b = mkfile(r, "b", "text")
        return mkdrv(r, mkconfig({"name": "c", "a": a, "b": b}), match_all, build_wrapper(_w))

    new_r = Registry(S)
    a = mknode({"name": "a"}, {"f.txt": b"bytes"}, r=new_r)
    c, _ = instantiate(old_style, S=S)
    assert drefcfg(c, S)["a"] == a
    with pytest.raises(InstantiateError) as ei:
        mknode(new_r, {"name": "a"}, r=new_r)
    assert str(ei.value) == "mknode got a registry both first and as r=: pass one of them"


def test_manager_stage_gets_the_registry_first(S: StorageSettings) -> None:
    """A 0.2.x stage ``stage(m)`` (or annotated Manager) receives the registry positionally."""

    def stage(m: Any, n: int = 1) -> Any:
        return mknode(m, {"name": "s", "n": n})

    def annotated(reg: Registry) -> Any:
        return mknode(reg, {"name": "t"})

    d, clo = instantiate(stage, 2, S=S)
    assert drefcfg(d, S)["n"] == 2 and clo.dref == d
    d2, _ = instantiate(annotated, S=S)
    assert drefcfg(d2, S)["name"] == "t"

    def data_m(m: int) -> Any:
        return mknode({"name": "u", "m": m})

    d3, _ = instantiate(data_m, 7, S=S)  # m given: not a registry parameter
    assert drefcfg(d3, S)["m"] == 7


def test_realize_of_a_manager_stage_answers_its_rref(S: StorageSettings) -> None:
    """realize(instantiate(stage(m))) is one RRef, as in 0.2.x; other stages keep the triple."""

    def old(m: Any) -> Any:
        return mknode(m, {"name": "old"}, {"f": "x"})

    def new(r: Registry | None = None) -> Any:
        return mknode({"name": "old"}, {"f": "x"}, r=r)

    i = instantiate(old, S=S)
    assert i.seed_api and i.dref == i[1].dref and i.derivations == i[1].derivations
    rref = realize(i)
    assert rref == realize1(i) == realize1(instantiate(new, S=S))
    res, _, ctx = realize(instantiate(new, S=S))
    assert ctx[res] == [rref]
    res2, clo2, _ = realize(i[1])  # the bare Closure keeps the triple
    assert (res2, clo2) == (i[0], i[1])


def test_instantiate_a_registered_dref_and_closure_dref(S: StorageSettings) -> None:
    """instantiate(dref, r=r) closes over DRefs already registered; Closure.dref needs one."""
    r = Registry(S)
    a = mknode({"name": "a"}, r=r)
    b = mknode({"name": "b"}, r=r)
    res, clo = instantiate(a, r=r)
    assert (res, clo.dref) == (a, a)
    _, two = instantiate([a, b], r=r)
    with pytest.raises(RefError) as ei:
        two.dref  # noqa: B018
    assert str(ei.value) == "the closure has 2 targets, so no single .dref: use .targets"


def test_match_all_without_parentheses(S: StorageSettings) -> None:
    """``match_all`` itself is a matcher, as in the original's Registry API."""

    def st(r: Registry | None = None) -> Any:
        return mkdrv({"name": "m"}, match_all, build_wrapper(_w), r)

    rr = realizeMany(instantiate(st, S=S))
    assert len(rr) == 1
    assert match_all(S, []) is None and match_all(S, rr) == rr


def test_du_reads_as_the_original_dict(S: StorageSettings) -> None:
    """du()[dref] == (bytes of the derivation folder, {rref: bytes})."""
    r = realize1(instantiate(mknode, {"name": "a"}, {"f": "12345"}, S=S))
    u = du(S)
    (d,) = list(u)
    total, rrefs = u[d]
    assert (total, rrefs) == (u.drefs[d], {r: u.rrefs[r]})
    assert dict(u.items()) == {d: (total, {r: u.rrefs[r]})}


def test_link_format(tmp_path: Any, S: StorageSettings) -> None:
    """linkrref/linkrrefs/linkdref(format=...) name links by %(N)s and %(T)s."""
    r = realize1(instantiate(mknode, {"name": "a"}, {"f": "x"}, S=S))
    t = timestring(rrefbstart(r, S))
    dest = str(tmp_path)
    assert linkrref(r, dest, format="_rref_%(T)s_%(N)s", S=S) == f"{dest}/_rref_{t}_a"
    assert linkrrefs([r], dest, S, format="%(N)s-x") == [f"{dest}/a-x"]
    d = mklens(r, S).dref
    assert linkdref(d, dest, format="_rref_%(N)s", S=S) == f"{dest}/_rref_a"
    with pytest.raises(StoreError) as ei:
        linkrref(r, dest, format="%(X)s", S=S)
    assert str(ei.value) == (
        f"link format '%(X)s' for {r}: KeyError('X'); use %(N)s (name) and %(T)s "
        "(build start time) only"
    )
    with pytest.raises(StoreError) as ei:
        linkrref(r, dest, format="a/%(N)s", S=S)
    assert str(ei.value) == f"link format 'a/%(N)s' for {r} gives the bad name 'a/a'"


def test_build_error_exception(S: StorageSettings) -> None:
    """BuildError.exception is the realizer's exception (the original's attribute)."""

    def boom(b: Build) -> None:
        raise KeyError("k")

    def st(r: Registry | None = None) -> Any:
        return mkdrv({"name": "boom"}, match_all(), build_wrapper(boom), r)

    with pytest.raises(BuildError) as ei:
        realize1(instantiate(st, S=S))
    assert isinstance(ei.value.exception, KeyError)
    assert ei.value.exception is ei.value.__cause__


def test_config_val_and_lens_syspath_of_a_dref(S: StorageSettings) -> None:
    """A config's .val is its dict; mklens(dref).syspath is the derivation folder."""
    c = mkconfig({"name": "v", "a": [1]})
    assert c.val == {"name": "v", "a": [1]}
    d, _ = instantiate(mknode, {"name": "v"}, S=S)
    assert mklens(d, S).syspath == os.path.join(S.storage, d[len("dref:") :])


def test_fetchlocal_out_path(tmp_path: Any, S: StorageSettings) -> None:
    """A fetch kept as-is promises its file as out_path (unpacked ones do not)."""
    src = tmp_path / "data.csv"
    src.write_text("1,2")
    h = hashlib.sha256(b"1,2").hexdigest()
    r = realize1(instantiate(fetchlocal, str(src), sha256=h, mode="as-is", S=S))
    assert mklens(r, S).out_path.syspath == os.path.join(rref2path(r, S), "data.csv")
    assert drefcfg(mklens(r, S).dref, S)["out_path"] == [mklens(r, S).dref, "data.csv"]
    d, _ = instantiate(fetchlocal, str(src), sha256=h, mode="unpack", filename="x.tar", S=S)
    assert "out_path" not in drefcfg(d, S)
    assert selfref not in str(drefcfg(d, S))


def test_fsinit_use_as_default(tmp_path: Any) -> None:
    """fsinit(S, use_as_default=True) makes S the default store, as the original did."""
    S = mkSS(str(tmp_path / "plx"))
    fsinit(S)
    assert fsstorage() != S.storage
    fsinit(S, use_as_default=True)
    assert fsstorage() == S.storage


def test_mklens_original_keywords(S: StorageSettings) -> None:
    """mklens(x, b=build), mklens(x, ctx=context) and mklens(x, r=registry) as in the original."""
    seen: dict[str, str] = {}

    def make(b: Build) -> None:
        seen["own"] = mklens(b.dref, b=b).out.syspath
        seen["dep"] = mklens(b.config["dep"], b=b).syspath
        with open(seen["own"], "w") as f:
            f.write("y")

    def st(r: Registry | None = None) -> Any:
        dep = mknode({"name": "dep"}, {"f": "x"}, r=r)
        cfg = {"name": "top", "dep": dep, "out": [selfref, "o"]}
        return mkdrv(cfg, match_all(), build_wrapper(make), r)

    res, _, ctx = realize(instantiate(st, S=S))
    dep = drefcfg(res, S)["dep"]
    assert seen["dep"] == rref2path(ctx[dep][0], S)
    assert seen["own"].endswith("/o") and not seen["own"].startswith(S.storage)
    assert mklens(res, ctx=ctx, S=S).out.contents == "y"
    reg = Registry(S)
    assert mklens(res, r=reg).syspath == os.path.join(S.storage, res[len("dref:") :])


def test_copyclosure_into_the_default_store(tmp_path: Any, S: StorageSettings) -> None:
    """copyclosure(rrefs, S) copies into the default store, as the original's D=None."""
    r = realize1(instantiate(mknode, {"name": "c"}, {"f": "x"}, S=S))
    D = fsinit(mkSS(str(tmp_path / "dst")), use_as_default=True)
    assert copyclosure([r], S) == [r]
    assert os.path.isdir(rref2path(r, D))

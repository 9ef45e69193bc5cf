"""The original's reference, context, config, storage and validation helpers (legacy/core.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    ConfigError,
    InstantiateError,
    PromiseError,
    RefError,
    Registry,
    StorageSettings,
    StoreError,
    build_outpath,
    build_wrapper,
    drefcfg,
    instantiate,
    match_only,
    mkconfig,
    mkdrv,
    mkSS,
    realize1,
    rref2path,
    rrefctx,
    selfref,
)
from pylightnix.legacy import core as L
from pylightnix.store.layout import RESERVED

D1 = "dref:" + "a" * 32 + "-one"
D2 = "dref:" + "b" * 32 + "-two"
R1 = "rref:" + "c" * 32 + "-" + "a" * 32 + "-one"
R1b = "rref:" + "d" * 32 + "-" + "a" * 32 + "-one"


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "f.txt"), "w") as f:
        f.write("x")


def _two(r: Registry | None = None) -> Any:
    one = mkdrv({"name": "one", "f": [selfref, "f.txt"]}, match_only(), build_wrapper(_write), r)
    return mkdrv({"name": "two", "dep": one}, match_only(), build_wrapper(_write), r)


def test_ref_helpers() -> None:
    """undref/unrref split refs, trimhash cuts hashes, predicates test exactly."""
    assert L.undref(D1) == ("a" * 32, "one")
    assert L.unrref(R1) == ("c" * 32, "a" * 32, "one")
    assert L.trimhash("e" * 64) == "e" * 32
    with pytest.raises(RefError) as ei:
        L.trimhash("xyz")
    assert str(ei.value) == "trimhash('xyz'): expected a hex hash of at least 32 characters"
    assert (L.isdref(D1), L.isdref(R1), L.isrref(R1), L.isrref("rref:short")) == (
        True,
        False,
        True,
        False,
    )
    assert L.isrefpath([D1, "a", "b"]) and not L.isrefpath(["a", D1])
    assert L.isselfpath([selfref, "x"]) and not L.isselfpath([D1, "x"])
    assert L.mkname("ok-name_1") == "ok-name_1"
    with pytest.raises(RefError):
        L.mkname("bad name")


def test_context_helpers(S: StorageSettings) -> None:
    """Contexts are plain dicts: add returns a new sorted one, deref names missing DRefs."""
    c0 = L.mkcontext()
    c1 = L.context_add(c0, D2, [R1])
    c2 = L.context_add(c1, D1, [R1b, R1])
    assert c0 == {} and list(c2) == [D1, D2] and c2[D1] == [R1, R1b]
    assert L.context_eq(c2, {D2: [R1], D1: [R1, R1b]})
    assert not L.context_eq(c2, c1)
    assert L.context_deref(c2, D1) == [R1, R1b]
    with pytest.raises(RefError) as ei:
        L.context_deref(c1, D1)
    assert str(ei.value) == f"{D1} is not in the context (it has {[D2]})"
    assert L.context_serialize({D1: [R1]}) == f'{{"{D1}":["{R1}"]}}'
    with pytest.raises(RefError) as ei:
        L.context_derefpath(c2, [D1, "f"], S)
    assert str(ei.value) == f"{D1} has 2 realizations in the context: a path needs one"


def test_config_helpers() -> None:
    """cfg* spellings read configs; promises are listed and resolved."""
    c = mkconfig({"name": "n", "a": 1, "out": [selfref, "o.txt"], "d": {"x": [selfref, "y"]}})
    assert L.cfgcattrs(c).a == 1
    assert L.cfgserialize(c) == (
        '{"a":1,"d":{"x":["<self>","y"]},"name":"n","out":["<self>","o.txt"]}'
    )
    assert L.cfgsp(c) == [("out", [selfref, "o.txt"]), ("d.x", [selfref, "y"])]
    assert L.config_substitutePromises(c, D1)["out"] == [D1, "o.txt"]


def test_output_adapters_and_validation(S: StorageSettings) -> None:
    """Output-typed callbacks adapt to the engine; output_validate names missing promises."""
    m = L.output_matcher(lambda S, o: L.Output(o.val[:1]) if o.val else None)
    assert m(S, [R1, R1b]) == [R1]
    assert m(S, []) is None
    d, _ = instantiate(_two, S=S)
    one = drefcfg(d, S)["dep"]
    folder = os.path.join(S.tmpdir, "o")
    os.makedirs(folder)
    with pytest.raises(PromiseError) as ei:
        L.output_validate(one, L.Output([folder]), S)
    missing = os.path.join(folder, "f.txt")
    assert str(ei.value) == f"{one}: the build did not produce promised files [{missing!r}]"
    assert ei.value.failed == [(folder, [selfref, "f.txt"])]  # type: ignore[attr-defined]
    open(os.path.join(folder, "f.txt"), "w").close()
    assert L.output_validate(one, L.Output([folder]), S) == [folder]


def test_registry_and_storage_helpers(S: StorageSettings) -> None:
    """mkregistry/instantiate_/mkclosure/mkdrv_/mkrealization drive the engine."""
    r = L.mkregistry(S)
    assert L.tlregistry(r) is r and L.tlregistry() is None
    res, clo = L.instantiate_(r, _two)
    assert L.mkclosure(res, r).targets == clo.targets == (res,)
    assert L.storagename() == "store-v2"
    assert L.reserved("/x", "context.json") == f"/x/{RESERVED}/context.json"
    assert L.tlstorage(S) is S
    cfg = mkconfig({"name": "raw", "v": 1})
    d = L.mkdrv_(cfg, S)
    assert drefcfg(d, S) == {"name": "raw", "v": 1}
    assert os.path.isfile(L.drefcfgpath(d, S))
    out = os.path.join(S.tmpdir, "made")
    os.makedirs(out)
    with open(os.path.join(out, "a"), "w") as f:
        f.write("1")
    rref = L.mkrealization(d, {}, out, S)
    with open(os.path.join(rref2path(rref, S), "a")) as f:
        assert f.read() == "1"
    rr = realize1(clo)
    dep = drefcfg(res, S)["dep"]
    assert L.store_deref(rr, dep, S) == rrefctx(rr, S)[dep][0]
    assert L.rrefpath2path(rr, [dep, "f.txt"], S).endswith("f.txt")
    assert L.store_config(rr, S)["name"] == "two"
    assert L.store_cattrs(res, S).dep == dep
    assert L.rrefbdelta(rr, S) >= 0.0 and L.rrefbstop(rr, S) >= 0.0


def test_graph_helpers() -> None:
    """kahntsort orders dependencies first and detects cycles; dagroots finds the tops."""
    assert L.kahntsort(["c", "b", "a"], {"c": ["b"], "b": ["a"]}) == ["a", "b", "c"]
    assert L.kahntsort(["a", "b"], {"a": ["b"], "b": ["a"]}) is None
    assert L.dagroots(["a", "b", "c"], {"c": ["b"], "b": ["a"]}) == {"c"}


def test_validation_raises_this_packages_errors(S: StorageSettings) -> None:
    """The assert_* checks raise PylightnixError subclasses (they hold under python -O)."""
    L.assert_valid_dref(D1)
    L.assert_valid_rref(R1)
    L.assert_valid_hashpart("a" * 32)
    L.assert_valid_hash("a" * 64)
    L.assert_valid_refpath([D1, "x"])
    L.assert_valid_config(mkconfig({"a": 1}))
    L.assert_valid_context({D1: [R1]})
    L.assert_valid_storage(S)
    for f, arg, err, msg in (
        (L.assert_valid_dref, R1, RefError, None),
        (L.assert_valid_hashpart, "A" * 32, RefError, None),
        (L.assert_valid_hash, "x", RefError, "'x' is not a sha256 hex digest (64 hex characters)"),
        (L.assert_valid_refpath, ["x"], RefError, "['x'] is not a RefPath [dref, 'sub', 'path']"),
        (L.assert_valid_config, {"a": 1}, ConfigError, None),
        (L.assert_valid_context, {D1: [R1, "x"]}, RefError, None),
        (L.assert_valid_closure, 1, RefError, "1 is not a Closure (instantiate() returns one)"),
        (L.assert_valid_dict, {"a": (1,)}, ConfigError, None),
        (L.assert_valid_storage, mkSS("/nonexistent/plx"), StoreError, None),
    ):
        with pytest.raises(err) as ei:
            f(arg)  # type: ignore[operator]
        if msg is not None:
            assert str(ei.value) == msg
    with pytest.raises(InstantiateError):
        L.assert_have_realizers(Registry(S), [D1])
    with pytest.raises(ConfigError) as ei:
        L.assert_rref_deps(mkconfig({"x": [R1]}))
    assert str(ei.value) == (
        f"the config mentions {R1}: configs depend on DRefs, not RRefs (use "
        "match_exact([rref]) to pin a realization)"
    )
    with pytest.raises(PromiseError) as ei:
        L.assert_promise_fulfilled("out", [selfref, "o"], "/nonexistent")
    assert str(ei.value) == (
        "promise 'out' (['<self>', 'o']) is not fulfilled: '/nonexistent/o' is missing"
    )

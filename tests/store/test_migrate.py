"""Importing stores of the original Pylightnix (``store/migrate.py``), built by a test script."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    StoreError,
    build_wrapper,
    drefcfg,
    drefrrefs,
    instantiate,
    match_all,
    match_only,
    migrate_store,
    mkdrv,
    realizeMany,
    rref2path,
    rrefbstart,
    rrefctx,
    rrefmeta,
    selfref,
)
from pylightnix.store.links import parsetime
from pylightnix.store.migrate import Skipped
from tests.legacy.oldstore import OldStore, old_dhash, old_rhash, snapshot


def _read(rref: str, S: StorageSettings, *rel: str) -> str:
    with open(os.path.join(rref2path(rref, S), *rel)) as f:  # type: ignore[arg-type]
        return f.read()


def _never(b: Build) -> None:
    raise AssertionError("a migrated realization must be reused, not rebuilt")


def test_fixture_writer_reproduces_the_original_hashes(tmp_path: Any) -> None:
    """The old-store writer gives the original's documented DRef and RRef hashes."""
    assert old_dhash({"a": 1})[:32] == "a76762e9bc54e47c09455bdb226e2388"
    assert old_dhash({"a": 1, "artifact": ["__self__", "artifact"]})[:32] == (
        "8ad3011c55361998e7c1c7b8240e0bc3"
    )
    d = tmp_path / "r"
    d.mkdir()
    for name, text in (("artifact", "42"), ("context.json", "{}"), ("id", "0")):
        (d / name).write_text(text)
    assert old_rhash(str(d))[:32] == "d62256450cdb2d9d31f433cca408c5b5"


def _store_02(root: str) -> dict[str, Any]:
    """A 0.2.x store: src -> train (2 realizations, promises) -> report, and leftovers."""
    o = OldStore(root, "0.2")
    src = o.mkdrv({"name": "src", "data": ["__promise__", "data.txt"]})
    r_src = o.mkrealization(src, {}, {"data.txt": "1 2 3"})
    train = o.mkdrv(
        {"name": "train", "lr": 0.1, "src": [src, "data.txt"], "out": ["__promise__", "m.txt"]}
    )
    r_t1 = o.mkrealization(train, {src: [r_src]}, {"m.txt": "model A", "sub/log": "a"})
    r_t2 = o.mkrealization(
        train,
        {src: [r_src]},
        {"m.txt": "model B", "sub/log": "b"},
        start="200510-00:00:00:000000+0000",
    )
    report = o.mkdrv({"name": "report", "train": train})
    r_rep = o.mkrealization(report, {src: [r_src], train: [r_t1, r_t2]}, {"r.txt": "AB"})
    tagged = o.mkrealization(
        train,
        {src: [r_src]},
        {"log.txt": "x"},
        extra={"group.json": f'{{"tag": "log", "group": "{r_t1}"}}'},
    )
    orphan = o.mkdrv({"name": "orphan", "dep": "dref:" + "0" * 32 + "-gone"})
    os.makedirs(os.path.join(o.store, "1" * 32 + "-half.tmp"))
    return {
        "o": o,
        "src": src,
        "r_src": r_src,
        "train": train,
        "r_t1": r_t1,
        "r_t2": r_t2,
        "report": report,
        "r_rep": r_rep,
        "tagged": tagged,
        "orphan": orphan,
    }


def test_migrate_02_store(tmp_path: Any, S: StorageSettings) -> None:
    """A 0.2.x store is re-hashed (configs, contexts, artifacts, times); leftovers reported."""
    f = _store_02(str(tmp_path / "old" / "_pylightnix"))
    before = snapshot(f["o"].store)
    res = migrate_store(f["o"].root, S=S)
    assert snapshot(f["o"].store) == before
    assert res.source == f["o"].store
    assert sorted(res.drefs) == sorted([f["src"], f["train"], f["report"]])
    assert sorted(res.rrefs) == sorted([f["r_src"], f["r_t1"], f["r_t2"], f["r_rep"]])
    assert set(res.skipped) == {
        Skipped(
            f["orphan"],
            "its config names dref:" + "0" * 32 + "-gone, which was not carried over "
            "(missing from the old store or skipped)",
        ),
        Skipped(
            f["tagged"],
            "it is a non-'out' output tag of a 0.2.x group (output tags were removed)",
        ),
    }
    src, train = res.drefs[f["src"]], res.drefs[f["train"]]
    assert drefcfg(train, S) == {
        "name": "train",
        "lr": 0.1,
        "src": [src, "data.txt"],
        "out": [train, "m.txt"],
    }
    nt1, nt2 = res.rrefs[f["r_t1"]], res.rrefs[f["r_t2"]]
    assert sorted(drefrrefs(train, S)) == sorted([nt1, nt2])
    assert _read(nt1, S, "m.txt") == "model A"
    assert _read(nt2, S, "sub", "log") == "b"
    assert sorted(os.listdir(rref2path(nt1, S))) == ["__pylightnix__", "m.txt", "sub"]
    assert rrefctx(nt1, S) == {src: [res.rrefs[f["r_src"]]]}
    assert rrefctx(res.rrefs[f["r_rep"]], S) == {train: sorted([nt1, nt2])}
    assert rrefbstart(nt2, S) == parsetime("200510-00:00:00:000000+0000")
    assert rrefmeta(nt1, S)["migrated_from"] == f["r_t1"]


def test_migrated_realizations_are_reused_by_stages(tmp_path: Any, S: StorageSettings) -> None:
    """Stages written for this engine with the migrated configs reuse the imported realizations."""
    f = _store_02(str(tmp_path / "old"))
    res = migrate_store(f["o"].store, S=S)

    def stages(r: Any = None) -> Any:
        s = mkdrv(
            {"name": "src", "data": [selfref, "data.txt"]}, match_only(), build_wrapper(_never), r
        )
        cfg = {"name": "train", "lr": 0.1, "src": [s, "data.txt"], "out": [selfref, "m.txt"]}
        t = mkdrv(cfg, match_all(), build_wrapper(_never), r)
        return mkdrv({"name": "report", "train": t}, match_all(), build_wrapper(_never), r)

    got = realizeMany(instantiate(stages, S=S))
    assert got == [res.rrefs[f["r_rep"]]]


def test_migrate_03_store_and_rerun(tmp_path: Any, S: StorageSettings) -> None:
    """0.3.x: selfrefs and start times carried, failures and null contexts reported; idempotent."""
    o = OldStore(str(tmp_path / "old3"), "0.3")
    a = o.mkdrv({"name": "a", "artifact": ["__self__", "artifact"]})
    ra = o.mkrealization(a, {}, {"artifact": "42"})
    bad = o.mkrealization(a, {}, {"x": "1"}, extra={"either_status.txt": "Traceback ..."})
    b = o.mkdrv({"name": "b", "a": a})
    rb = o.mkrealization(b, {a: [ra]}, {"out.txt": "ok"}, start="210906-10:00:00:000000+0000")
    rb_null = o.mkrealization(b, {a: None}, {"out.txt": "null"})
    before = snapshot(o.store)
    res = migrate_store(o.store, S=S)
    assert snapshot(o.store) == before
    assert sorted(res.rrefs) == sorted([ra, rb])
    assert res.skipped == (
        Skipped(bad, "it is a failed build of the original's either module (either_status.txt)"),
        Skipped(rb_null, f"its context.json has no realization of {a}"),
    )
    na = res.drefs[a]
    assert drefcfg(na, S) == {"name": "a", "artifact": [na, "artifact"]}
    assert rrefbstart(res.rrefs[rb], S) == parsetime("210906-10:00:00:000000+0000")
    again = migrate_store(o.store, S=S)
    assert (again.drefs, again.rrefs, again.skipped) == (res.drefs, res.rrefs, res.skipped)
    assert sorted(drefrrefs(res.drefs[b], S)) == [res.rrefs[rb]]


def test_key_order_variants_become_one_derivation(tmp_path: Any, S: StorageSettings) -> None:
    """Old configs differing only in key order map to one DRef; dependants of both carry over."""
    o = OldStore(str(tmp_path / "old"), "0.3")
    a1 = o.mkdrv({"name": "a", "x": 1, "y": 2})
    a2 = o.mkdrv({"y": 2, "x": 1, "name": "a"})
    r1 = o.mkrealization(a1, {}, {"f": "1"})
    r2 = o.mkrealization(a2, {}, {"f": "2"})
    b2 = o.mkdrv({"name": "b", "a": a2})
    rb = o.mkrealization(b2, {a2: [r2]}, {"g": "x"})
    assert a1 != a2
    res = migrate_store(o.store, S=S)
    assert res.skipped == ()
    assert res.drefs[a1] == res.drefs[a2]
    assert sorted(drefrrefs(res.drefs[a1], S)) == sorted([res.rrefs[r1], res.rrefs[r2]])
    assert rrefctx(res.rrefs[rb], S) == {res.drefs[a1]: [res.rrefs[r2]]}


def test_migrate_refuses_what_is_not_an_old_store(tmp_path: Any, S: StorageSettings) -> None:
    """A folder without store-v0 is refused with the expected layout named."""
    p = str(tmp_path / "nothing")
    os.makedirs(p)
    with pytest.raises(StoreError) as ei:
        migrate_store(p, S=S)
    assert str(ei.value) == (
        f"{p!r} is not a store of the original Pylightnix: expected a folder named "
        "'store-v0' or a root folder holding one (e.g. ~/_pylightnix)"
    )

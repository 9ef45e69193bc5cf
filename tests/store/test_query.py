"""Tests of store/query.py: every query on a real store built by a small pipeline."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

import pytest

from pylightnix import (
    Build,
    Registry,
    StorageSettings,
    build_outpaths,
    build_path,
    build_wrapper,
    instantiate,
    match_all,
    match_only,
    mkdrv,
    realize,
    selfref,
)
from pylightnix.config import mkrefpath
from pylightnix.errors import RefError
from pylightnix.hashing import context_hash
from pylightnix.realize.build import build_paths
from pylightnix.refs import mkrref, parse_dref, parse_rref
from pylightnix.store.index import forget_index
from pylightnix.store.query import (
    alldrefs,
    allrrefs,
    dref2path_checked,
    dref_exists,
    drefattrs,
    drefcfg,
    drefcfg_,
    drefdeps,
    drefdeps1,
    drefrrefs,
    drefrrefs_chash,
    drefrrefsC,
    path2dref,
    path2rref,
    rootdrefs,
    rootrrefs,
    rref2path,
    rrefattrs,
    rrefbstart,
    rrefctx,
    rrefdata,
    rrefdeps,
    rrefdeps1,
    rrefmeta,
    store_dref2path,
    store_reindex,
)
from pylightnix.types import DRef, RRef
from tests.helpers import index_lines


def _two(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "n.txt"), "w") as f:
            f.write(str(i))


def _cat(b: Build) -> None:
    c = b.config
    text = ""
    for p in _paths(b, c["src"]):
        with open(p) as f:
            text += f.read()
    with open(build_path(b, c["out"]), "w") as f:
        f.write(text + "!")


def _paths(b: Build, refpath: list[Any]) -> list[str]:
    return list(build_paths(b, refpath))


def _pipeline(r: Registry) -> list[DRef]:
    a = mkdrv({"name": "a"}, match_all(), build_wrapper(_two, nouts=2), r=r)
    b = mkdrv(
        {"name": "b", "src": [a, "n.txt"], "out": [selfref, "b.txt"]},
        match_only(),
        build_wrapper(_cat),
        r=r,
    )
    c = mkdrv(
        {"name": "c", "src": [b, "b.txt"], "out": [selfref, "c.txt"]},
        match_only(),
        build_wrapper(_cat),
        r=r,
    )
    lone = mkdrv({"name": "lone"}, match_all(), build_wrapper(_two), r=r)
    return [a, b, c, lone]


@dataclass(frozen=True)
class Built:
    """A store holding the realized pipeline a (2 outputs) -> b -> c, and lone."""

    S: StorageSettings
    a: DRef
    b: DRef
    c: DRef
    lone: DRef
    ctx: dict[DRef, list[RRef]]


@pytest.fixture
def built(S: StorageSettings) -> Built:
    """The realized pipeline in a fresh store."""
    res, clo = instantiate(_pipeline, S=S)
    _, _, ctx = realize(clo)
    return Built(S, *res, ctx)


def test_paths_of_objects(built: Built) -> None:
    """rref2path/dref2path give the folders; path2dref/path2rref invert them."""
    S, b, ctx = built.S, built.b, built.ctx
    (rb,) = ctx[b]
    pb = rref2path(rb, S)
    assert pb == os.path.join(S.storage, b[5:], parse_rref(rb)[0])
    assert os.path.isfile(os.path.join(pb, "b.txt"))
    assert dref2path_checked(b, S) == store_dref2path(b, S) == os.path.join(S.storage, b[5:])
    assert path2dref(os.path.join(pb, "b.txt"), S) == b
    assert path2dref(dref2path_checked(b, S), S) == b
    assert path2rref(os.path.join(pb, "b.txt"), S) == rb
    assert path2rref(pb, S) == rb
    assert path2rref(dref2path_checked(b, S), S) is None
    assert path2dref("/elsewhere", S) is None
    assert path2rref(os.path.join(S.storage, "FORMAT"), S) is None


def test_unknown_refs_are_refused(built: Built) -> None:
    """Queries on refs not in the store raise RefError naming the ref and the store."""
    S, a = built.S, built.a
    fake_r = RRef("rref:" + "0" * 32 + "-" + a[5:])
    fake_d = DRef("dref:" + "0" * 32 + "-a")
    with pytest.raises(RefError) as ei:
        rref2path(fake_r, S)
    assert str(ei.value) == (
        f"{fake_r} is not in the store at {S.storage!r} (removed, or built in another store?)"
    )
    with pytest.raises(RefError) as ei2:
        drefcfg(fake_d, S)
    assert str(ei2.value) == (
        f"{fake_d} is not in the store at {S.storage!r} (instantiate its stage first)"
    )
    with pytest.raises(RefError):
        rrefmeta(fake_r, S)
    with pytest.raises(RefError):
        rrefctx(fake_r, S)
    assert drefrrefs(fake_d, S) == []
    assert not dref_exists(fake_d, S)


def test_configs_and_attributes(built: Built) -> None:
    """drefcfg_ is the stored Config; drefcfg resolves self-refs; attrs views both."""
    S, a, b, ctx = built.S, built.a, built.b, built.ctx
    assert drefcfg_(b, S).val == {"name": "b", "src": [a, "n.txt"], "out": [selfref, "b.txt"]}
    assert drefcfg(b, S) == {"name": "b", "src": [a, "n.txt"], "out": [b, "b.txt"]}
    assert drefattrs(b, S).out == [b, "b.txt"]
    assert rrefattrs(ctx[b][0], S).src == [a, "n.txt"]
    assert dref_exists(b, S)


def test_contexts_and_metadata(built: Built) -> None:
    """rrefctx is the direct context; a dependency-free stage has the empty context."""
    S, a, b, c, ctx = built.S, built.a, built.b, built.c, built.ctx
    assert len(ctx[a]) == 2
    assert rrefctx(ctx[b][0], S) == {a: sorted(ctx[a])}
    assert rrefctx(ctx[c][0], S) == {b: ctx[b]}
    assert rrefctx(ctx[a][0], S) == {}
    m = rrefmeta(ctx[c][0], S)
    assert m["build_start"] <= m["build_stop"]
    assert rrefbstart(ctx[c][0], S) == m["build_start"]
    assert rrefbstart(ctx[b][0], S) <= rrefbstart(ctx[c][0], S)


def test_listing_queries(built: Built) -> None:
    """alldrefs/allrrefs/drefrrefs list everything; drefrrefsC filters by context."""
    S, a, b, c, lone, ctx = built.S, built.a, built.b, built.c, built.lone, built.ctx
    assert sorted(alldrefs(S)) == sorted([a, b, c, lone])
    assert list(alldrefs(S)) == sorted(alldrefs(S))
    assert sorted(allrrefs(S)) == sorted(r for rs in ctx.values() for r in rs)
    assert drefrrefs(a, S) == sorted(ctx[a])
    assert drefrrefsC(b, {a: ctx[a]}, S) == ctx[b]
    assert drefrrefsC(b, {a: ctx[a][:1]}, S) == []
    assert drefrrefsC(a, {}, S) == sorted(ctx[a])
    assert drefrrefs_chash(b, context_hash({a: ctx[a]}), S) == ctx[b]


def test_dependency_queries(built: Built) -> None:
    """Direct and transitive dependencies of derivations and realizations; roots."""
    S, a, b, c, lone, ctx = built.S, built.a, built.b, built.c, built.lone, built.ctx
    assert drefdeps1([c], S) == {b}
    assert drefdeps([c], S) == {a, b}
    assert drefdeps([a, lone], S) == set()
    assert rrefdeps1(ctx[c], S) == set(ctx[b])
    assert rrefdeps(ctx[c], S) == set(ctx[b]) | set(ctx[a])
    assert rootdrefs(S) == {c, lone}
    assert rootrrefs(S) == set(ctx[c]) | set(ctx[lone])


def test_rrefdata_lists_artifacts_without_reserved_files(built: Built) -> None:
    """rrefdata yields the top-level artifacts, never __pylightnix__."""
    S, c, ctx = built.S, built.c, built.ctx
    p = rref2path(ctx[c][0], S)
    assert list(rrefdata(ctx[c][0], S)) == [os.path.join(p, "c.txt")]
    with open(os.path.join(p, "c.txt")) as f:
        assert f.read() == "01!!"


def test_mkrefpath_points_into_dependencies(built: Built) -> None:
    """mkrefpath builds the RefPath a config uses to name a dependency's file."""
    b = built.b
    assert mkrefpath(b, ["b.txt"]) == [b, "b.txt"]


def test_store_reindex_rebuilds_lost_lines(built: Built) -> None:
    """Deleting the indexes and reindexing restores exactly the same candidates."""
    S, a, b, c, lone, ctx = built.S, built.a, built.b, built.c, built.lone, built.ctx
    assert store_reindex(S) == 0
    for d in (a, b, c, lone):
        os.unlink(os.path.join(S.storage, d[5:], "index.tsv"))
    forget_index(S)
    assert drefrrefsC(b, {a: ctx[a]}, S) == []
    assert store_reindex(S) == 5
    assert drefrrefsC(b, {a: ctx[a]}, S) == ctx[b]
    assert drefrrefsC(a, {}, S) == sorted(ctx[a])
    for r in allrrefs(S):
        chash = context_hash(rrefctx(r, S))[:32]
        assert ["R", parse_rref(r)[0], chash] in [x[:3] for x in index_lines(S.storage, r)]


def test_a_line_without_its_realization_is_not_a_candidate(built: Built) -> None:
    """A crash between line and rename leaves a line that queries ignore."""
    S, a, ctx = built.S, built.a, built.ctx
    ghost = "9" * 32
    with open(os.path.join(S.storage, a[5:], "index.tsv"), "a") as f:
        f.write(f"R\t{ghost}\t{context_hash({})[:32]}\t1.0\n")
    assert drefrrefsC(a, {}, S) == sorted(ctx[a])


def test_queries_use_the_default_store(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without S, queries read the store of PYLIGHTNIX_ROOT."""
    S, a, ctx = built.S, built.a, built.ctx
    monkeypatch.setenv("PYLIGHTNIX_ROOT", S.root)
    assert drefrrefs(a) == sorted(ctx[a])
    assert rref2path(ctx[a][0]) == rref2path(ctx[a][0], S)


def test_realizing_leaves_no_temporary_folders(built: Built) -> None:
    """Realizing leaves the store's temporary folder empty."""
    S = built.S
    assert os.listdir(S.tmpdir) == []


def test_a_folder_without_its_reserved_folder_is_listed_only_as_damaged(built: Built) -> None:
    """allrrefs and drefrrefs(damaged=True) list it; drefrrefs, the index lookup and
    rootrrefs's dependency walk leave it out; store_reindex skips it."""
    S, b, c, ctx = built.S, built.b, built.c, built.ctx
    (rb,) = ctx[b]
    (rc,) = ctx[c]
    p = rref2path(rc, S)
    os.chmod(p, 0o755)
    os.chmod(os.path.join(p, "__pylightnix__"), 0o755)
    shutil.rmtree(os.path.join(p, "__pylightnix__"))
    assert drefrrefs(c, S) == []
    assert drefrrefs(c, S, damaged=True) == [rc]
    assert rc in set(allrrefs(S))
    assert drefrrefs_chash(c, context_hash({b: [rb]}), S) == []
    # Nothing readable says rc uses rb: rb becomes a root, and so is the damaged rc.
    assert {rb, rc} <= rootrrefs(S)
    assert store_reindex(S) == 0


def _six(b: Build) -> None:
    for o in build_outpaths(b):
        with open(os.path.join(o, "r.txt"), "w") as f:
            f.write(os.urandom(8).hex())


def _age(*paths: str) -> None:
    """Date folders back by an hour, as in a store left alone for a while."""
    for p in paths:
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))


def test_kept_listing_sees_new_and_removed_realizations(S: StorageSettings) -> None:
    """A kept listing of many candidates is dropped when a realization is added or removed."""
    from pylightnix import rmref

    d, clo = instantiate(mkdrv, {"name": "six"}, match_all(), build_wrapper(_six, nouts=6), S=S)
    realize(clo)
    (chash,) = {x[2] for x in index_lines(S.storage, d, "R")}
    idx, base = os.path.join(S.storage, d[5:], "index.tsv"), os.path.join(S.storage, d[5:])
    _age(idx, base)
    first = drefrrefs_chash(d, chash, S)
    assert len(first) == 6 and drefrrefs_chash(d, chash, S) == first
    realize(clo, force_rebuild=True)
    second = drefrrefs_chash(d, chash, S)
    assert len(second) == 12 and set(first) < set(second)
    _age(idx, base)
    assert drefrrefs_chash(d, chash, S) == second
    rmref(second[0], S)
    assert drefrrefs_chash(d, chash, S) == second[1:]


def test_recent_folders_are_listed_every_time(S: StorageSettings) -> None:
    """Folders changed within the last second are listed again by every lookup (never kept)."""
    d, clo = instantiate(mkdrv, {"name": "six"}, match_all(), build_wrapper(_six, nouts=6), S=S)
    realize(clo)
    (chash,) = {x[2] for x in index_lines(S.storage, d, "R")}
    idx, base = os.path.join(S.storage, d[5:], "index.tsv"), os.path.join(S.storage, d[5:])
    for p in (idx, base):
        os.utime(p)  # changed just now, however long the build took
    before = drefrrefs_chash(d, chash, S)
    # A line and a folder slipped in with the folder's time put back as it was
    # (what a change within one timestamp tick looks like): still seen.
    times = [os.stat(p).st_mtime_ns for p in (idx, base)]
    ghost = "f" * 32
    with open(idx, "a") as f:
        f.write(f"R\t{ghost}\t{chash}\t1.0\n")
    os.mkdir(os.path.join(base, ghost))
    os.mkdir(os.path.join(base, ghost, "__pylightnix__"))
    for p, t in zip((idx, base), times, strict=True):
        os.utime(p, ns=(t, t))
    after = drefrrefs_chash(d, chash, S)
    assert len(after) == 7 and set(before) < set(after)


def test_store_reindex_keeps_an_insertion_in_flight_and_drops_dangling_lines(
    built: Built,
) -> None:
    """A line whose realization a live process registered (its folder not renamed in yet)
    survives a reindex; a line nobody registered, without its folder, goes."""
    from pylightnix.store.temproots import add_temproots

    S, a = built.S, built.a
    chash = context_hash({})[:32]
    in_flight, dangling = "e" * 32, "9" * 32
    add_temproots(S, [mkrref(in_flight, *parse_dref(a))])  # type: ignore[arg-type]
    with open(os.path.join(S.storage, a[5:], "index.tsv"), "a") as f:
        f.write(f"R\t{in_flight}\t{chash}\t5.0\nR\t{dangling}\t{chash}\t6.0\n")
    store_reindex(S)
    named = [x[1] for x in index_lines(S.storage, a, "R")]
    assert in_flight in named
    assert dangling not in named
    assert sorted(set(named) - {in_flight}) == sorted(parse_rref(r)[0] for r in built.ctx[a])

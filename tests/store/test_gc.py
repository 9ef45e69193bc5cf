"""Garbage collection: roots, keep-lists, dry runs, leftovers, locks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix import (
    Build,
    GCResult,
    GCRoot,
    LockError,
    OptionError,
    RefError,
    StorageSettings,
    StoreError,
    alldrefs,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    du,
    fsinit,
    gc,
    instantiate,
    match_latest,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    rref2dref,
    rref2path,
    rrefdeps,
    store_gc,
)
from pylightnix.config import config_hash, config_name, mkconfig
from pylightnix.refs import mkdref, mkrref, parse_rref
from pylightnix.store.fsops import mkdtemp_in, tree_bytes
from pylightnix.store.gcgraph import compute_live, scan_graph
from pylightnix.store.insert import store_realization
from pylightnix.store.layout import LOCKS_DIR
from pylightnix.store.leftovers import temp_owner
from pylightnix.store.locks import gc_shared
from pylightnix.store.query import rrefctx
from pylightnix.store.roots import list_roots, register_root
from pylightnix.store.temproots import release_temproots
from pylightnix.types import DRef, RRef
from tests.helpers import index_lines
from tests.strategies import dags


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(f"{build_cattrs(b).name}:{build_cattrs(b).i}")


def _chain(prefix: str, n: int, r: Any = None) -> DRef:
    d = mkdrv({"name": f"{prefix}0", "i": 0}, match_only(), build_wrapper(_write), r)
    for i in range(1, n):
        d = mkdrv(
            {"name": f"{prefix}{i}", "i": i, "dep": d}, match_only(), build_wrapper(_write), r
        )
    return d


def _closure(S: StorageSettings, rref: RRef) -> set[RRef]:
    return {rref, *rrefdeps([rref], S)}


def _link(S: StorageSettings, rref: RRef, path: str) -> str:
    os.symlink(rref2path(rref, S), path)
    register_root(S, path)
    return path


def test_gc_keeps_rooted_closure_and_deletes_everything_else(
    S: StorageSettings, tmp_path: Any
) -> None:
    """A registered link keeps its realization and its deps; another chain is deleted whole."""
    a = realize1(instantiate(_chain, "a", 3, S=S))
    b = realize1(instantiate(_chain, "b", 2, S=S))
    link = _link(S, a, str(tmp_path / "result-a"))
    release_temproots(S)
    bset = {b, *rrefdeps([b], S)}
    res = gc(S)
    assert res.deleted_rrefs == tuple(sorted(bset))
    assert res.deleted_drefs == tuple(sorted(rref2dref(r) for r in bset))
    assert res.roots == (GCRoot(a, f"link {link}"),)
    assert res.stale_roots == ()
    assert res.dry_run is False
    assert set(allrrefs(S)) == _closure(S, a)
    assert set(alldrefs(S)) == {rref2dref(r) for r in _closure(S, a)}


def test_dry_run_reports_exactly_what_a_real_run_deletes(S: StorageSettings) -> None:
    """A dry run deletes nothing and its report (with sizes) equals the following real run's."""
    b = realize1(instantiate(_chain, "b", 2, S=S))
    release_temproots(S)
    everything = set(allrrefs(S))
    size = sum(tree_bytes(os.path.dirname(rref2path(r, S))) for r in everything)
    tree_size_before = tree_bytes(rref2path(b, S))
    usage = du(S)
    dry = gc(S, dry_run=True)
    assert dry.bytes_freed == usage.total
    assert {r: dry.sizes[r] for r in everything} == dict(usage.rrefs)
    assert set(allrrefs(S)) == everything
    assert set(dry.deleted_rrefs) == everything == {b, *rrefdeps([b], S)}
    real = gc(S)
    assert dry.deleted_drefs == real.deleted_drefs
    assert dry.deleted_rrefs == real.deleted_rrefs
    assert dry.bytes_freed == real.bytes_freed
    assert dry.sizes == real.sizes
    assert set(real.sizes) == {*everything, *real.deleted_drefs}
    assert sum(real.sizes.values()) == real.bytes_freed
    assert real.sizes[b] == tree_size_before
    assert real.bytes_freed == size > 0
    assert list(allrrefs(S)) == []
    assert list(alldrefs(S)) == []


def test_keep_rrefs_keeps_the_realization_and_what_it_was_built_from(
    S: StorageSettings,
) -> None:
    """keep_rrefs protects the transitive closure of each kept realization."""
    a = realize1(instantiate(_chain, "a", 4, S=S))
    release_temproots(S)
    mid = sorted(rrefdeps([a], S))[0]
    res = gc(S, keep_rrefs=[mid])
    kept = {mid, *rrefdeps([mid], S)}
    assert set(allrrefs(S)) == kept
    assert set(res.deleted_rrefs) == {a, *rrefdeps([a], S)} - kept
    assert res.roots == (GCRoot(mid, "keep_rrefs"),)


def test_keep_drefs_keeps_configs_but_not_realizations(S: StorageSettings) -> None:
    """keep_drefs keeps the derivation and its dependency derivations, yet deletes realizations."""
    a = realize1(instantiate(_chain, "a", 3, S=S))
    release_temproots(S)
    drefs = {rref2dref(r) for r in {a, *rrefdeps([a], S)}}
    res = gc(S, keep_drefs=[rref2dref(a)])
    assert set(alldrefs(S)) == drefs
    assert list(allrrefs(S)) == []
    assert res.deleted_drefs == ()
    assert len(res.deleted_rrefs) == 3


def test_store_gc_computes_like_the_seed_and_deletes_nothing(S: StorageSettings) -> None:
    """store_gc(keep_drefs, keep_rrefs) returns the removable sets, deleting nothing."""
    a = realize1(instantiate(_chain, "a", 2, S=S))
    b = realize1(instantiate(_chain, "b", 2, S=S))
    release_temproots(S)
    before = set(allrrefs(S))
    drefs, rrefs = store_gc([], [a], S)
    bset = {b, *rrefdeps([b], S)}
    assert rrefs == bset
    assert drefs == {rref2dref(r) for r in bset}
    assert set(allrrefs(S)) == before


_HALF_INSERTION = """
import os, sys
from pylightnix import mkSS
from pylightnix.store.index import append_index, realization_line
from pylightnix.store.temproots import add_temproots
S = mkSS(sys.argv[1])
add_temproots(S, [sys.argv[2], sys.argv[3]])
append_index(S, sys.argv[3], [realization_line(sys.argv[2][5:37], sys.argv[4], 1.0)])
os._exit(0)  # killed before the rename: no clean-up of any kind
"""


def test_gc_removes_leftovers_dangling_lines_and_stale_roots(
    S: StorageSettings, tmp_path: Any
) -> None:
    """Temp folders, half-written files, the index line of a killed insertion (found from
    its dead process's record; dropped from the index, not reported as a path) and stale
    root entries go."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    _link(S, a, str(tmp_path / "result"))
    gone = _link(S, a, str(tmp_path / "gone"))
    os.unlink(gone)
    release_temproots(S)
    os.makedirs(os.path.join(S.tmpdir, "build-x-123-abc", "out"))
    ddir = os.path.dirname(rref2path(a, S))
    half = os.path.join(ddir, ".tmp-1-ab-config.json")
    with open(half, "w") as f:
        f.write("{")
    (line,) = index_lines(S.storage, a, "R")
    # A process killed between an insertion's index line and its rename.
    ghost = mkrref("0" * 32, *parse_rref(a)[1:])  # type: ignore[arg-type]
    before = set(os.listdir(os.path.join(S.storage, ".temproots")))
    subprocess.run(
        [sys.executable, "-c", _HALF_INSERTION, S.root, ghost, rref2dref(a), line[2]], check=True
    )
    (record,) = set(os.listdir(os.path.join(S.storage, ".temproots"))) - before
    assert len(index_lines(S.storage, a, "R")) == 2
    stale_entry = [r.entry for r in list_roots(S) if r.rref is None]
    res = gc(S)
    assert res.deleted_rrefs == ()
    assert res.stale_roots == tuple(stale_entry)
    assert set(res.tmp_removed) == {
        os.path.join(S.tmpdir, "build-x-123-abc"),
        half,
        os.path.join(S.storage, ".temproots", record),
    }
    assert os.listdir(S.tmpdir) == []
    assert not os.path.lexists(half)
    assert [x[1] for x in index_lines(S.storage, a, "R")] == [parse_rref(a)[0]]
    assert [r.rref for r in list_roots(S)] == [a]
    # Once a collection deletes a realization of that derivation, its index is compacted.
    os.unlink(str(tmp_path / "result"))
    res = gc(S, keep_drefs=[rref2dref(a)])
    assert res.deleted_rrefs == (a,)
    assert index_lines(S.storage, a) == []


def test_gc_keeps_the_line_of_an_insertion_in_flight(S: StorageSettings) -> None:
    """A line whose realization a live process registered but has not renamed in yet
    (an insertion between its line and its rename) survives a compaction; the line of a
    realization the collection deleted goes."""
    from pylightnix.store.temproots import add_temproots

    a = realize1(instantiate(_chain, "a", 1, S=S))
    b = realize1(instantiate(_chain, "a", 1, S=S), force_rebuild=True)
    assert a == b
    line = index_lines(S.storage, a, "R")[0]
    h = "f" * 32
    in_flight = mkrref(h, *parse_rref(a)[1:])  # type: ignore[arg-type]
    release_temproots(S)
    add_temproots(S, [in_flight, rref2dref(a)])  # what place_realization does first
    with open(os.path.join(os.path.dirname(rref2path(a, S)), "index.tsv"), "a") as f:
        f.write(f"R\t{h}\t{line[2]}\t1.0\n")  # then the line; the rename comes last
    res = gc(S)
    assert res.deleted_rrefs == (a,)
    assert res.tmp_removed == ()
    assert [x[1] for x in index_lines(S.storage, a, "R")] == [h]


def test_gc_removes_lines_and_lock_files_of_what_it_deletes(S: StorageSettings) -> None:
    """Index lines of deleted realizations and lock files of deleted derivations go too."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    release_temproots(S)
    locks = os.path.join(S.storage, LOCKS_DIR)
    assert f"{os.path.basename(os.path.dirname(rref2path(a, S)))}.lock" in os.listdir(locks)
    res = gc(S, keep_drefs=[rref2dref(a)])
    assert res.deleted_rrefs == (a,)
    assert index_lines(S.storage, a) == []
    gc(S)
    assert sorted(os.listdir(locks)) == ["gc.collector", "gc.lock"]


_INNER: list[GCResult] = []


def _collecting(b: Build) -> None:
    _INNER.append(gc(b.S))
    _write(b)


def test_gc_inside_a_running_realize_runs_and_keeps_what_the_realize_uses(
    S: StorageSettings,
) -> None:
    """A realizer calling gc() neither deadlocks nor loses the dependency it is building from."""
    _INNER.clear()

    def stage(r: Any) -> DRef:
        dep = mkdrv({"name": "dep", "i": 0}, match_only(), build_wrapper(_write), r)
        return mkdrv(
            {"name": "top", "i": 1, "dep": dep}, match_only(), build_wrapper(_collecting), r
        )

    top = realize1(instantiate(stage, S=S))
    dep = next(iter(rrefdeps([top], S)))
    assert len(_INNER) == 1
    assert _INNER[0].deleted_rrefs == ()
    assert _INNER[0].deleted_drefs == ()
    assert (GCRoot(dep, "temproot")) in _INNER[0].roots
    assert set(allrrefs(S)) == {top, dep}


def test_gc_inside_gc_shared_of_the_same_thread_raises_instead_of_deadlocking(
    S: StorageSettings,
) -> None:
    """Calling gc while this thread holds the GC lock shared is a LockError, not a hang."""
    with gc_shared(S), pytest.raises(LockError) as ei:
        gc(S)
    assert str(ei.value) == (
        f"cannot take the GC lock of {S.storage!r} exclusively: this thread holds it in "
        "shared mode (inside gc_shared), so waiting would deadlock; collect garbage outside "
        "of gc_shared blocks"
    )


def test_bad_keep_ref_is_refused_before_anything_is_deleted(S: StorageSettings) -> None:
    """A malformed keep ref raises RefError and the store keeps everything."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    release_temproots(S)
    with pytest.raises(RefError):
        gc(S, keep_rrefs=[RRef("rref:nope")])
    assert list(allrrefs(S)) == [a]


def test_a_root_through_a_symlinked_store_path_still_counts(tmp_path: Any) -> None:
    """A result link made through a symlink to the store root keeps its realization."""
    real = fsinit(mkSS(str(tmp_path / "real")))
    os.symlink(str(tmp_path / "real"), str(tmp_path / "alias"))
    S = mkSS(str(tmp_path / "alias"))
    fsinit(S)
    a = realize1(instantiate(_chain, "a", 2, S=S))
    os.symlink(os.path.join(rref2path(a, S), "out.txt"), str(tmp_path / "result-file"))
    register_root(S, str(tmp_path / "result-file"))
    release_temproots(S)
    res = gc(S)
    assert res.deleted_rrefs == ()
    assert set(allrrefs(real)) == {a, *rrefdeps([a], S)}


def test_gc_of_an_empty_store_is_an_empty_result(S: StorageSettings) -> None:
    """Nothing to collect gives an all-empty GCResult."""
    assert gc(S) == GCResult()


def _ref(i: int) -> tuple[RRef, DRef]:
    h = f"{i:032x}"
    return mkrref(h, h, "s"), mkdref(h, "s")  # type: ignore[arg-type]


def test_compute_live_walks_a_long_chain_without_recursion() -> None:
    """Reachability over a 5,000-long chain is exact and keeps every derivation on the way."""
    n = 5000
    refs = [_ref(i) for i in range(n)]
    rdeps = {refs[i][0]: [refs[i - 1][0]] if i else [] for i in range(n)}
    ddeps = {refs[i][1]: [refs[i - 1][1]] if i else [] for i in range(n)}
    extra_r, extra_d = _ref(n)
    rdeps[extra_r] = []
    ddeps[extra_d] = []
    live_r, live_d = compute_live([refs[-1][0]], [], rdeps, ddeps)
    assert live_r == {r for r, _ in refs}
    assert live_d == {d for _, d in refs}


def test_compute_live_ignores_roots_that_are_not_stored() -> None:
    """A root naming a missing realization or derivation keeps nothing."""
    (r0, d0), (r1, d1) = _ref(0), _ref(1)
    assert compute_live([r1], [d1], {r0: []}, {d0: []}) == (set(), set())


def test_lock_files_that_are_not_build_locks_are_left_alone(S: StorageSettings) -> None:
    """GC removes build locks of gone derivations only, never other files in .locks."""
    locks = os.path.join(S.storage, LOCKS_DIR)
    open(os.path.join(locks, "remote-cache.lock"), "w").close()
    gc(S)
    assert sorted(os.listdir(locks)) == ["gc.collector", "gc.lock", "remote-cache.lock"]


def test_registering_a_link_to_a_collected_realization_is_an_error(
    S: StorageSettings, tmp_path: Any
) -> None:
    """A root made after GC removed its realization is refused and leaves no entry."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    link = str(tmp_path / "late")
    os.symlink(rref2path(a, S), link)
    release_temproots(S)
    gc(S)
    with pytest.raises(StoreError) as ei:
        register_root(S, link)
    assert str(ei.value) == (
        f"cannot keep {a} alive through {link!r}: it is no longer in the store (a garbage "
        "collection removed it before it was linked); realize it again and link the result: "
        "realize keeps its results alive until then"
    )
    assert list_roots(S) == []


def test_gc_seals_a_realization_left_writable_by_a_crash_after_its_rename(
    S: StorageSettings,
) -> None:
    """The crash window between rename and chmod leaves the top folder writable: GC fixes it."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    p = rref2path(a, S)
    os.chmod(p, 0o755)
    gc(S, keep_rrefs=[a])
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o555


def _break_context(S: StorageSettings, r: RRef) -> None:
    res = os.path.join(rref2path(r, S), "__pylightnix__")
    os.chmod(res, 0o755)
    os.unlink(os.path.join(res, "context.json"))


def test_gc_refuses_when_a_kept_realization_has_unreadable_dependencies(
    S: StorageSettings,
) -> None:
    """A live realization whose context is gone stops the collection before any deletion."""
    a = realize1(instantiate(_chain, "a", 2, S=S))
    realize1(instantiate(_chain, "b", 1, S=S))
    release_temproots(S)
    before = set(allrrefs(S))
    _break_context(S, a)
    with pytest.raises(StoreError) as ei:
        gc(S, keep_rrefs=[a])
    assert str(ei.value).startswith(
        f"cannot collect garbage in {S.storage!r}: the dependencies of {a}, which is kept alive, "
        "cannot be read"
    )
    assert set(allrrefs(S)) == before


def test_gc_deletes_an_unreferenced_realization_with_unreadable_dependencies(
    S: StorageSettings,
) -> None:
    """Garbage with a damaged context is simply deleted: nothing live depends on what it lacks."""
    a = realize1(instantiate(_chain, "a", 1, S=S))
    release_temproots(S)
    _break_context(S, a)
    assert gc(S).deleted_rrefs == (a,)


def _naive_live(
    roots: set[RRef], keep: set[DRef], ctx: dict[RRef, list[RRef]], cdeps: dict[DRef, list[DRef]]
) -> tuple[set[RRef], set[DRef]]:
    """Reachability the slow obvious way: recursion per root."""
    live_r: set[RRef] = set()

    def walk_r(r: RRef) -> None:
        live_r.add(r)
        for x in ctx[r]:
            walk_r(x)

    for r in roots:
        walk_r(r)
    live_d: set[DRef] = set()

    def walk_d(d: DRef) -> None:
        live_d.add(d)
        for x in cdeps[d]:
            walk_d(x)

    for d in {*keep, *(rref2dref(r) for r in live_r)}:
        walk_d(d)
    return live_r, live_d


@settings(max_examples=40, deadline=None)
@given(plan=dags(max_stages=8), data=st.data())
def test_gc_keeps_exactly_the_closure_of_random_roots(plan: Any, data: Any) -> None:
    """On random stores and roots, GC leaves exactly what naive reachability says is live."""
    with tempfile.TemporaryDirectory() as tmp:
        S = fsinit(mkSS(os.path.join(tmp, "plx")))
        drefs: list[DRef] = []
        rrefs: list[list[RRef]] = []
        ctx: dict[RRef, list[RRef]] = {}
        cdeps: dict[DRef, list[DRef]] = {}
        for i, st_ in enumerate(plan):
            cfg = mkconfig({"name": f"s{i}", "deps": [drefs[d] for d in st_["deps"]]})
            dref = mkdref(config_hash(cfg), config_name(cfg))
            cdeps[dref] = [drefs[d] for d in st_["deps"]]
            mine: list[RRef] = []
            for j in range(st_["nouts"]):
                c = {drefs[d]: [rrefs[d][j % len(rrefs[d])]] for d in st_["deps"]}
                out = os.path.join(S.tmpdir, f"o{i}-{j}")
                os.makedirs(out)
                with open(os.path.join(out, "f"), "w") as f:
                    f.write(f"{i} {j}")
                r = store_realization(S, dref, cfg, c, out, build_start=0.0)
                ctx[r] = [x for v in c.values() for x in v]
                mine.append(r)
            drefs.append(dref)
            rrefs.append(mine)
        every = sorted(ctx)
        roots = set(data.draw(st.lists(st.sampled_from(every), max_size=3)))
        keep = set(data.draw(st.lists(st.sampled_from(drefs), max_size=2)))
        live_r, live_d = _naive_live(roots, keep, ctx, cdeps)
        release_temproots(S)
        dry = gc(S, keep_rrefs=roots, keep_drefs=keep, dry_run=True)
        res = gc(S, keep_rrefs=roots, keep_drefs=keep)
        assert set(allrrefs(S)) == live_r
        assert set(alldrefs(S)) == live_d
        assert set(res.deleted_rrefs) == set(every) - live_r
        assert set(res.deleted_drefs) == set(drefs) - live_d
        assert (dry.deleted_rrefs, dry.deleted_drefs) == (res.deleted_rrefs, res.deleted_drefs)
        assert dry.sizes == res.sizes
        assert dry.bytes_freed == res.bytes_freed


def test_temp_folders_of_live_processes_are_kept_and_of_dead_ones_removed(
    S: StorageSettings,
) -> None:
    """A paused REPL's build folder (live pid) survives GC; a killed process's leftover does not."""
    mine = mkdtemp_in(S.tmpdir, "repl-train")
    code = (
        "import sys; from pylightnix.store.fsops import mkdtemp_in; "
        "print(mkdtemp_in(sys.argv[1], 'build-x'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, S.tmpdir], check=True, capture_output=True, text=True
    )
    dead = out.stdout.strip()
    assert temp_owner(os.path.basename(dead)) is not None
    res = gc(S)
    assert res.tmp_removed == (dead,)
    assert os.listdir(S.tmpdir) == [os.path.basename(mine)]


def _random_out(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(os.urandom(8).hex())


def _nondet(r: Any = None) -> DRef:
    return mkdrv({"name": "nondet"}, match_latest(), build_wrapper(_random_out), r)


def test_keep_last_keeps_the_newest_realizations_of_each_derivation(S: StorageSettings) -> None:
    """keep_last=2 keeps the two most recently stored of four realizations, deletes the rest."""
    clo = instantiate(_nondet, S=S)
    made = [realize1(clo, force_rebuild=True) for _ in range(4)]
    release_temproots(S)
    res = gc(S, keep_last=2)
    assert set(allrrefs(S)) == set(made[2:])
    assert res.deleted_rrefs == tuple(sorted(made[:2]))
    assert set(res.roots) == {GCRoot(r, "keep_last 2") for r in made[2:]}


def test_older_than_keeps_what_is_newer_and_deletes_older_garbage(S: StorageSettings) -> None:
    """older_than=3600 keeps what was just stored; older_than=0 deletes all garbage."""
    a = realize1(instantiate(_chain, "a", 2, S=S))
    release_temproots(S)
    kept = gc(S, older_than=3600)
    assert kept.deleted_rrefs == ()
    assert GCRoot(a, "older_than 3600") in kept.roots
    closure = {a, *rrefdeps([a], S)}
    assert set(gc(S, older_than=0).deleted_rrefs) == closure
    assert list(allrrefs(S)) == []


def test_bad_policies_are_option_errors(S: StorageSettings) -> None:
    """A negative keep_last or older_than (or a non-number) is refused before any work."""
    with pytest.raises(OptionError) as ei:
        gc(S, keep_last=-1)
    assert str(ei.value) == (
        "keep_last=-1: give the number (0 or more) of newest realizations to keep per derivation"
    )
    with pytest.raises(OptionError) as ei:
        gc(S, older_than=-5)
    assert str(ei.value) == (
        "older_than=-5: give a number of seconds, 0 or more (e.g. 7 * 86400 for a week)"
    )
    with pytest.raises(OptionError):
        gc(S, older_than="7d")  # type: ignore[arg-type]


def test_a_clean_store_has_no_leftovers(S: StorageSettings) -> None:
    """After realizes and one collection, a dry run reports no leftovers (markers of what
    it would delete are not leftovers)."""
    a = realize1(instantiate(_chain, "a", 3, S=S))
    release_temproots(S)
    dry = gc(S, dry_run=True)
    assert set(dry.deleted_rrefs) == {a, *rrefdeps([a], S)}
    assert dry.tmp_removed == ()
    gc(S)
    assert gc(S, dry_run=True) == GCResult(dry_run=True)


def test_scan_graph_stats_objects_only_for_times_and_modes(S: StorageSettings) -> None:
    """Stored times come with times=True, writable tops with modes=True, neither by default."""
    a = realize1(instantiate(_chain, "a", 2, S=S))
    (dep,) = _closure(S, a) - {a}
    os.chmod(rref2path(a, S), 0o755)
    plain = scan_graph(S)
    assert (plain.ctime, plain.unsealed) == ({}, [])
    assert plain.rref_deps == {a: [dep], dep: []}
    assert plain.rref_drv == {a: rref2dref(a), dep: rref2dref(dep)}
    both = scan_graph(S, times=True, modes=True)
    assert set(both.ctime) == {a, dep, rref2dref(a), rref2dref(dep)}
    assert both.ctime[a] == os.lstat(rref2path(a, S)).st_ctime
    assert both.unsealed == [rref2path(a, S)]
    os.chmod(rref2path(a, S), 0o555)


def test_dependencies_of_a_realized_derivation_come_from_its_realization(
    S: StorageSettings,
) -> None:
    """A realization's context names its derivation's dependencies, so GC reads no config
    for a derivation that has one: with a1's config.json gone, keeping a1 keeps a0."""
    a1 = realize1(instantiate(_chain, "a", 2, S=S))
    release_temproots(S)
    d1 = rref2dref(a1)
    (d0,) = rrefctx(a1, S)
    cfg = os.path.join(S.storage, d1[5:], "config.json")
    os.chmod(os.path.dirname(cfg), 0o755)
    os.unlink(cfg)
    res = gc(S, keep_drefs=[d1])
    assert res.deleted_drefs == ()
    assert os.path.isdir(os.path.join(S.storage, d0[5:]))


def test_a_kept_unrealized_derivation_without_its_config_stops_the_collection(
    S: StorageSettings,
) -> None:
    """With no realization to tell its dependencies, a kept derivation whose config.json is
    gone makes GC refuse before deleting anything."""
    d, _ = instantiate(_chain, "u", 2, S=S)
    release_temproots(S)
    cfg = os.path.join(S.storage, d[5:], "config.json")
    os.chmod(os.path.dirname(cfg), 0o755)
    os.unlink(cfg)
    with pytest.raises(StoreError) as ei:
        gc(S, keep_drefs=[d])
    assert str(ei.value).startswith(
        f"cannot collect garbage in {S.storage!r}: the dependencies of {d}, which is kept alive, "
        "cannot be read"
    )

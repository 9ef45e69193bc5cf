"""realize/step.py: matches become temporary roots, at once or in one batch."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    instantiate,
    match_only,
    mkdrv,
    realize,
    realize1,
    release_temproots,
    rmref,
    rreflog,
)
from pylightnix.hashing import context_hash
from pylightnix.realize.buildlog import TMP_LOG_NAME, rreflog_path
from pylightnix.realize.step import (
    VanishedError,
    build_folders,
    deferred_registration,
    give_back_build_folder,
    immediate_registration,
    match_in,
    take_build_folder,
)
from pylightnix.refs import dref_name
from pylightnix.store.temproots import my_temproots
from pylightnix.types import DRef


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def _one(r: Any = None) -> DRef:
    return mkdrv({"name": "one"}, match_only(), build_wrapper(_write), r)


def test_a_match_is_registered_at_once_outside_a_batch(S: StorageSettings) -> None:
    """match_in registers what the matcher chose before returning it."""
    rref = realize1(instantiate(_one, S=S))
    release_temproots(S)
    _, clo = instantiate(_one, S=S)
    with immediate_registration():
        assert match_in(clo.derivations[0], S, context_hash({})) == [rref]
    assert rref in my_temproots(S)


def test_a_batch_registers_at_its_end_and_notices_a_deleted_choice(S: StorageSettings) -> None:
    """Inside deferred_registration the choice is registered when the block ends; one
    deleted before that raises VanishedError (the scheduler then realizes again)."""
    rref = realize1(instantiate(_one, S=S))
    release_temproots(S)
    _, clo = instantiate(_one, S=S)
    drv = clo.derivations[0]
    with deferred_registration(S):
        assert match_in(drv, S, context_hash({})) == [rref]
        assert rref not in my_temproots(S)
    assert rref in my_temproots(S)
    release_temproots(S)
    with pytest.raises(VanishedError), deferred_registration(S):
        assert match_in(drv, S, context_hash({})) == [rref]
        rmref(rref, S)
    assert realize1(instantiate(_one, S=S)) == rref  # built again, same content


SEEN: list[tuple[str, int, int]] = []
FDS: list[int] = []  # the logs stay open: an inode number is not reused while open


def _maybe_loud(b: Build) -> None:
    c = build_cattrs(b)
    log = os.path.join(os.path.dirname(build_outpath(b)), TMP_LOG_NAME)
    FDS.append(os.open(log, os.O_RDONLY))
    SEEN.append((c.name, os.fstat(FDS[-1]).st_ino, id(sys.stdout)))
    if c.loud:
        print(f"loud {c.name}")
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(c.name)


def _loud_quiet(r: Any = None) -> DRef:
    d = None
    for i, loud in enumerate((True, False, True, False)):
        cfg: dict[str, Any] = {"name": f"s{i}", "loud": loud}
        if d is not None:
            cfg["prev"] = d
        d = mkdrv(cfg, match_only(), build_wrapper(_maybe_loud), r)
    assert d is not None
    return d


def test_a_pooled_build_folder_reuses_an_empty_log_and_never_truncates_a_stored_one(
    S: StorageSettings,
) -> None:
    """A silent build stores no build.log and leaves its (empty) log file to the next build;
    a log with output goes to its realization and the next build gets a new file."""
    SEEN.clear()
    before = sys.stdout
    try:
        _, _, ctx = realize(instantiate(_loud_quiet, S=S))
    finally:
        for fd in FDS:
            os.close(fd)
        FDS.clear()
    byname = {str(dref_name(d)): rs[0] for d, rs in ctx.items()}
    assert [rreflog(byname[f"s{i}"], S) for i in range(4)] == ["loud s0\n", "", "loud s2\n", ""]
    for i in (1, 3):
        assert not os.path.lexists(rreflog_path(byname[f"s{i}"], S))
    ino = [x[1] for x in SEEN]
    assert ino[1] == ino[2]  # s1 printed nothing: s2 wrote to the same file
    assert len({ino[0], ino[1], ino[3]}) == 3
    # The stream proxies were installed once for the whole realize, and removed after it.
    assert len({x[2] for x in SEEN}) == 1 and SEEN[0][2] != id(before)
    assert sys.stdout is before


def test_a_reused_build_folder_never_takes_over_a_leftover_with_contents(
    S: StorageSettings,
) -> None:
    """A pooled build folder is renamed after its next stage; a leftover holding files under
    that name (a killed process with the same pid) stays, an empty one is replaced."""
    with build_folders():
        tmp = take_build_folder(S, "a")
        give_back_build_folder(S, tmp)
        part = tmp.rsplit("-", 1)[1]
        left = os.path.join(S.tmpdir, f"build-b-{os.getpid()}-{part}")
        os.makedirs(os.path.join(left, "sub"))
        tmp2 = take_build_folder(S, "b")
        assert tmp2 != left and os.listdir(tmp2) == []
        assert os.listdir(left) == ["sub"] and not os.path.exists(tmp)
        give_back_build_folder(S, tmp2)
        empty = os.path.join(S.tmpdir, f"build-c-{os.getpid()}-{tmp2.rsplit('-', 1)[1]}")
        os.mkdir(empty)
        assert take_build_folder(S, "c") == empty
        give_back_build_folder(S, empty)
    assert os.listdir(S.tmpdir) == [os.path.basename(left)]


def _many(r: Any = None) -> DRef:
    from pylightnix import build_outpaths, match_latest

    def write(b: Build) -> None:
        for o in build_outpaths(b):
            with open(os.path.join(o, "out.txt"), "w") as f:
                f.write(os.urandom(8).hex())

    return mkdrv({"name": "many"}, match_latest(1), build_wrapper(write, nouts=3), r)


def test_a_match_never_offers_an_indexed_realization_that_is_not_in_place(
    S: StorageSettings,
) -> None:
    """Index lines whose folder is missing (an insertion in flight, one a crash left
    undone, one whose reserved folder was removed by hand) are never chosen, even when
    they rank first: the newest realization in place is."""
    from pylightnix import drefrrefs, rrefbstart
    from pylightnix.refs import mkrref, parse_dref, parse_rref
    from pylightnix.store.layout import RESERVED

    d, clo = instantiate(_many, S=S)
    realize(clo)
    rrefs = drefrrefs(d, S)
    # Newest first, ties (outputs of one build) in ascending RRef order.
    newest, second = sorted(rrefs, key=lambda r: (-rrefbstart(r, S), r))[:2]
    chash = context_hash({})[:32]
    ghost = "f" * 32  # no folder at all, and the newest build time
    with open(os.path.join(S.storage, d[5:], "index.tsv"), "a") as f:
        f.write(f"R\t{ghost}\t{chash}\t9999999999.0\n")
    assert match_in(clo.derivations[0], S, context_hash({})) == [newest]
    # The newest one loses its reserved folder: the next newest is chosen.
    damaged = os.path.join(S.storage, d[5:], parse_rref(newest)[0])
    os.chmod(damaged, 0o755)
    os.chmod(os.path.join(damaged, RESERVED), 0o755)
    for n in os.listdir(os.path.join(damaged, RESERVED)):
        os.remove(os.path.join(damaged, RESERVED, n))
    os.rmdir(os.path.join(damaged, RESERVED))
    assert match_in(clo.derivations[0], S, context_hash({})) == [second]
    assert mkrref(ghost, *parse_dref(d)) not in my_temproots(S)  # type: ignore[arg-type]


def test_a_realize_never_rests_on_an_indexed_realization_that_is_not_in_place(
    S: StorageSettings,
) -> None:
    """A no-op realize picks from the index and checks its picks at their registration:
    an upstream line in flight that ranks first makes that check fail, and the closure
    is realized again with its picks checked at once, so nothing is built, no
    assert_realized or dry run is misled, and the last chosen record names what is in
    place."""
    from pylightnix import match_all, rrefbstart
    from pylightnix.store.chosen import chosen_records

    def stages(r: Any = None) -> DRef:
        a = _many(r)
        return mkdrv({"name": "b", "a": a}, match_all(), build_wrapper(_write), r)

    b, clo = instantiate(stages, S=S)
    a = clo.derivations[0].dref
    _, _, ctx = realize(clo)
    ghost = "f" * 32
    with open(os.path.join(S.storage, a[5:], "index.tsv"), "a") as f:
        f.write(f"R\t{ghost}\t{context_hash({})[:32]}\t9999999999.0\n")
    for kw in ({"assert_realized": [a, b]}, {"dry_run": True}, {}):
        release_temproots(S)
        _, clo = instantiate(stages, S=S)
        _, _, got = realize(clo, **kw)  # type: ignore[arg-type]
        assert got == ctx, kw
    assert rrefbstart(ctx[a][0], S) < 9999999999.0
    (rec,) = chosen_records(S, a).values()
    assert rec.rrefs == tuple(ctx[a])


def test_a_match_subclass_is_asked_with_the_candidates_not_answered_from_the_index(
    S: StorageSettings,
) -> None:
    """A subclass of Match that answers otherwise than its key and trim is asked itself:
    the index's answer for the key and trim it inherits is not used."""
    from pylightnix import drefrrefs, match_latest
    from pylightnix.realize.matchers import Match

    class Largest(Match):
        def __call__(self, S: StorageSettings, rrefs: list[Any]) -> list[Any] | None:
            return [max(rrefs)] if rrefs else None

    base = match_latest(1)
    d, clo = instantiate(_many, S=S)
    realize(clo)
    odd = replace(clo.derivations[0], matcher=Largest(base.key, base.trim))
    latest = match_in(clo.derivations[0], S, context_hash({}))
    assert match_in(odd, S, context_hash({})) == [max(drefrrefs(d, S))] != latest

"""Verification: damaged realizations are found, reported and optionally repaired."""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any

import pytest

from pylightnix import (
    Build,
    DamagedRealization,
    OptionError,
    StorageSettings,
    VerifyResult,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    instantiate,
    match_only,
    mkdrv,
    realize1,
    rref2path,
    rrefctx,
    rrefdeps,
    verify,
)
from pylightnix.config import config_hash, config_name, mkconfig
from pylightnix.errors import IntegrityError
from pylightnix.hashing import context_hash, hash_tree, realization_hash
from pylightnix.realize.failures import store_failed_realization
from pylightnix.refs import mkdref, rref2dref
from pylightnix.store.insert import store_derivation
from pylightnix.store.layout import CONTEXT_FILE, RESERVED
from pylightnix.types import DRef, RRef


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(f"value {build_cattrs(b).i}\n")
    os.mkdir(os.path.join(build_outpath(b), "sub"))
    with open(os.path.join(build_outpath(b), "sub", "x.bin"), "wb") as f:
        f.write(bytes(range(256)))


def _chain(n: int, r: Any = None) -> DRef:
    d = mkdrv({"name": "v0", "i": 0}, match_only(), build_wrapper(_write), r)
    for i in range(1, n):
        d = mkdrv({"name": f"v{i}", "i": i, "dep": d}, match_only(), build_wrapper(_write), r)
    return d


def _edit(path: str, data: bytes | None) -> None:
    """Change (or, with None, delete) a file of a read-only realization, as root could."""
    parent = os.path.dirname(path)
    os.chmod(parent, 0o755)
    if data is None:
        os.unlink(path)
    else:
        os.chmod(path, 0o644)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o444)
    os.chmod(parent, 0o555)


def _rehash(S: StorageSettings, r: RRef) -> str:
    p = rref2path(r, S)
    return realization_hash(context_hash(rrefctx(r, S)), hash_tree(p, exclude=[RESERVED]))


def test_an_untouched_store_verifies(S: StorageSettings) -> None:
    """Every realization of a fresh store is checked and none is damaged."""
    top = realize1(instantiate(_chain, 3, S=S))
    res = verify(S=S)
    assert res == VerifyResult(tuple(sorted({top, *rrefdeps([top], S)})), ())
    assert res.ok


def test_a_flipped_byte_is_reported_with_both_hashes(S: StorageSettings) -> None:
    """Flipping one byte of an artifact makes that realization (only) damaged."""
    top = realize1(instantiate(_chain, 2, S=S))
    f = os.path.join(rref2path(top, S), "sub", "x.bin")
    with open(f, "rb") as fh:
        data = bytearray(fh.read())
    data[100] ^= 0x01
    _edit(f, bytes(data))
    res = verify(S=S)
    rhash = top.split(":")[1].split("-")[0]
    assert res.damaged == (
        DamagedRealization(
            top, f"its content hashes to {_rehash(S, top)}, not {rhash} (edited or corrupted)"
        ),
    )
    assert not res.ok


def test_a_deleted_file_is_reported(S: StorageSettings) -> None:
    """Removing an artifact changes the hash and is reported."""
    top = realize1(instantiate(_chain, 1, S=S))
    _edit(os.path.join(rref2path(top, S), "out.txt"), None)
    assert [d.rref for d in verify(S=S).damaged] == [top]


def test_a_writable_file_is_reported_even_with_intact_content(S: StorageSettings) -> None:
    """A realization must stay read-only: a write bit is damage."""
    top = realize1(instantiate(_chain, 1, S=S))
    os.chmod(os.path.join(rref2path(top, S), "out.txt"), 0o644)
    assert verify(S=S).damaged == (
        DamagedRealization(top, "'out.txt' in it is writable (realizations are read-only)"),
    )


def test_a_missing_context_file_is_reported(S: StorageSettings) -> None:
    """A realization without its reserved context file is damaged."""
    top = realize1(instantiate(_chain, 1, S=S))
    _edit(os.path.join(rref2path(top, S), RESERVED, CONTEXT_FILE), None)
    assert verify(S=S).damaged == (
        DamagedRealization(top, f"its reserved file {RESERVED}/{CONTEXT_FILE} is missing"),
    )


def test_a_tampered_config_damages_its_realizations(S: StorageSettings) -> None:
    """A config.json that no longer hashes to its DRef is reported on its realizations."""
    top = realize1(instantiate(_chain, 1, S=S))
    cfg = os.path.join(os.path.dirname(rref2path(top, S)), "config.json")
    os.chmod(cfg, 0o644)
    with open(cfg, "w") as f:
        f.write('{"i":1,"name":"v0"}')
    dref = "dref:" + top.split("-", 1)[1]
    assert verify(S=S).damaged == (
        DamagedRealization(
            top, f"the config.json of its derivation {dref} does not hash to {dref}"
        ),
    )


def test_only_the_chosen_realizations_are_checked(S: StorageSettings) -> None:
    """verify(rrefs) re-hashes exactly those; a missing one is reported as missing."""
    top = realize1(instantiate(_chain, 3, S=S))
    gone = RRef(top.replace(top[5:9], "0000", 1))
    res = verify([top, gone], S)
    assert res.checked == tuple(sorted([top, gone]))
    assert res.damaged == (DamagedRealization(gone, "its folder is missing"),)


def test_repair_remove_deletes_only_the_damaged_one_and_realize_rebuilds_it(
    S: StorageSettings,
) -> None:
    """Removed damage leaves the others; the next realize builds the same RRef again."""
    top = realize1(instantiate(_chain, 2, S=S))
    _edit(os.path.join(rref2path(top, S), "out.txt"), b"edited\n")
    deps = rrefdeps([top], S)
    res = verify(S=S, repair="remove")
    assert [(d.rref, d.action) for d in res.damaged] == [(top, "removed")]
    assert set(allrrefs(S)) == deps
    assert realize1(instantiate(_chain, 2, S=S)) == top
    assert verify(S=S).ok


def test_repair_quarantine_moves_the_damaged_one_under_the_root(S: StorageSettings) -> None:
    """Quarantine moves the folder to <root>/quarantine/<dhash>-<name>/<rhash>, content kept."""
    top = realize1(instantiate(_chain, 1, S=S))
    p = rref2path(top, S)
    _edit(os.path.join(p, "out.txt"), b"edited\n")
    res = verify(S=S, repair="quarantine")
    q = os.path.join(S.root, "quarantine", *p.split(os.sep)[-2:])
    assert res.damaged[0].action == f"quarantined to {q}"
    assert not os.path.exists(p)
    with open(os.path.join(q, "out.txt"), "rb") as f:
        assert f.read() == b"edited\n"
    assert stat.S_IMODE(os.stat(q).st_mode) & stat.S_IWUSR


def test_an_unknown_repair_mode_is_refused(S: StorageSettings) -> None:
    """repair must be None, 'remove' or 'quarantine'."""
    with pytest.raises(OptionError, match=r"repair='fix': expected None, 'remove' or 'quarantine'"):
        verify(S=S, repair="fix")  # type: ignore[arg-type]


def _failed(S: StorageSettings) -> RRef:
    """A failed realization, as realize's failure capture stores it."""
    cfg = mkconfig({"name": "broken"})
    dref = mkdref(config_hash(cfg), config_name(cfg))
    store_derivation(S, dref, cfg)
    folder = os.path.join(S.tmpdir, "partial")
    os.makedirs(folder)
    with open(os.path.join(folder, "half.txt"), "w") as f:
        f.write("half")
    record = {"error": "ValueError", "message": "boom", "traceback": "", "dependency": None}
    return store_failed_realization(S, dref, {}, folder, record, build_start=0.0)


def test_a_failed_realization_verifies_with_its_failure_record(S: StorageSettings) -> None:
    """Failed realizations hash their failure.json too: intact ones pass, edited ones do not."""
    r = _failed(S)
    assert verify([r], S).ok
    _edit(os.path.join(rref2path(r, S), RESERVED, "failure.json"), b'{"error":"other"}')
    assert [d.rref for d in verify([r], S).damaged] == [r]


def _drop_reserved(S: StorageSettings, r: RRef) -> None:
    """Remove a realization's whole reserved folder by hand."""
    p = rref2path(r, S)
    os.chmod(p, 0o755)
    res = os.path.join(p, RESERVED)
    os.chmod(res, 0o755)
    shutil.rmtree(res)
    os.chmod(p, 0o555)


def test_a_realization_without_its_reserved_folder_is_reported(S: StorageSettings) -> None:
    """Whole-store verify checks and reports a folder whose __pylightnix__ was removed."""
    top = realize1(instantiate(_chain, 2, S=S))
    deps = rrefdeps([top], S)
    _drop_reserved(S, top)
    assert set(allrrefs(S)) == {top, *deps}
    res = verify(S=S)
    assert res.checked == tuple(sorted({top, *deps}))
    assert res.damaged == (DamagedRealization(top, f"its reserved folder {RESERVED} is missing"),)


def test_realize_rebuilds_a_realization_without_its_reserved_folder(S: StorageSettings) -> None:
    """Realize never returns the damaged folder: it builds the same RRef again, intact."""
    clo = instantiate(_chain, 2, S=S)
    top = realize1(clo)
    _drop_reserved(S, top)
    assert realize1(instantiate(_chain, 2, S=S)) == top
    assert os.path.isdir(os.path.join(rref2path(top, S), RESERVED))
    assert verify(S=S).ok


def test_repair_removes_a_realization_without_its_reserved_folder(S: StorageSettings) -> None:
    """verify(repair='remove') deletes the damaged folder; the rest stays and verifies."""
    top = realize1(instantiate(_chain, 2, S=S))
    deps = rrefdeps([top], S)
    _drop_reserved(S, top)
    res = verify(S=S, repair="remove")
    assert [(d.rref, d.action) for d in res.damaged] == [(top, "removed")]
    assert set(allrrefs(S)) == deps
    assert verify(S=S).ok


def test_a_realization_of_a_derivation_without_config_is_reported(S: StorageSettings) -> None:
    """A realization whose derivation lost config.json is listed and reported, not skipped."""
    top = realize1(instantiate(_chain, 1, S=S))
    cfg = os.path.join(os.path.dirname(rref2path(top, S)), "config.json")
    os.unlink(cfg)
    assert list(allrrefs(S)) == [top]
    (d,) = verify(S=S).damaged
    assert (d.rref, d.reason) == (
        top,
        f"the config.json of its derivation {rref2dref(top)} is missing",
    )


def test_reading_the_context_of_a_damaged_realization_says_what_to_do(
    S: StorageSettings,
) -> None:
    """rrefctx of a realization without its reserved folder is an IntegrityError naming it."""
    top = realize1(instantiate(_chain, 1, S=S))
    _drop_reserved(S, top)
    with pytest.raises(IntegrityError) as ei:
        rrefctx(top, S)
    assert str(ei.value) == (
        f"{top} is damaged: its {RESERVED}/{CONTEXT_FILE} is missing (run `pylightnix verify "
        "--repair` to remove or quarantine it; the next realize builds it again)"
    )


def test_a_stray_file_in_a_reserved_folder_is_reported(S: StorageSettings) -> None:
    """verify reports a file the store never writes, added to __pylightnix__ by hand."""
    top = realize1(instantiate(_chain, 1, S=S))
    res = os.path.join(rref2path(top, S), RESERVED)
    os.chmod(res, 0o755)
    with open(os.path.join(res, "notes.txt"), "w") as f:
        f.write("x")
    os.chmod(os.path.join(res, "notes.txt"), 0o444)
    os.chmod(res, 0o555)
    assert verify(S=S).damaged == (
        DamagedRealization(
            top,
            f"its reserved folder {RESERVED} holds 'notes.txt', which the store never writes "
            "(only context.json, meta.json, build.log, failure.json belong there)",
        ),
    )


def test_no_rehash_skips_content_but_checks_structure_and_modes(S: StorageSettings) -> None:
    """rehash=False passes an edited artifact but reports missing reserved files and write bits."""
    a = realize1(instantiate(_chain, 1, S=S))
    _edit(os.path.join(rref2path(a, S), "out.txt"), b"edited\n")
    assert verify(S=S, rehash=False) == VerifyResult((a,), ())
    assert [d.rref for d in verify(S=S).damaged] == [a]
    _edit(os.path.join(rref2path(a, S), RESERVED, "meta.json"), None)
    assert verify(S=S, rehash=False).damaged == (
        DamagedRealization(a, f"its reserved file {RESERVED}/meta.json is missing"),
    )


def test_no_rehash_reports_write_bits_and_unreadable_context(S: StorageSettings) -> None:
    """rehash=False reports a writable file and a context.json that is not JSON."""
    top = realize1(instantiate(_chain, 2, S=S))
    (dep,) = rrefdeps([top], S)
    os.chmod(os.path.join(rref2path(top, S), "out.txt"), 0o644)
    _edit(os.path.join(rref2path(dep, S), RESERVED, CONTEXT_FILE), b"not json")
    damaged = {d.rref: d.reason for d in verify(S=S, rehash=False).damaged}
    assert damaged[top] == "'out.txt' in it is writable (realizations are read-only)"
    assert damaged[dep].startswith("its reserved files are unreadable (Expecting value")


def test_no_rehash_reports_a_reserved_file_replaced_by_a_link(S: StorageSettings) -> None:
    """rehash=False, like a full check, reports a reserved file that became a symlink."""
    a = realize1(instantiate(_chain, 1, S=S))
    res = os.path.join(rref2path(a, S), RESERVED)
    keep = os.path.join(str(S.root), "meta-copy.json")
    shutil.copyfile(os.path.join(res, "meta.json"), keep)
    os.chmod(res, 0o755)
    os.unlink(os.path.join(res, "meta.json"))
    os.symlink(keep, os.path.join(res, "meta.json"))
    os.chmod(res, 0o555)
    why = f"its reserved file {RESERVED}/meta.json is not a regular file (a link or folder)"
    assert verify(S=S, rehash=False).damaged == (DamagedRealization(a, why),)
    assert verify(S=S).damaged == (DamagedRealization(a, why),)

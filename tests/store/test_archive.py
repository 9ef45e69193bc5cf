"""Closure export/import/copy: exact round trips, closure-only archives, hostile archives."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
from typing import Any

import pytest

from pylightnix import (
    Build,
    IntegrityError,
    OptionError,
    RefError,
    StorageSettings,
    StoreError,
    alldrefs,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    copyclosure,
    export_closure,
    fsinit,
    import_closure,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    rref2dref,
    rref2path,
    rrefdeps,
    rrefmeta,
    verify,
)
from pylightnix.errors import ArchiveError, UnsafeArchiveError
from pylightnix.realize.buildlog import rreflog
from pylightnix.realize.failures import is_failed
from pylightnix.refs import dref_dirname, parse_rref
from pylightnix.store.archive import MANIFEST
from pylightnix.types import DRef, RRef
from tests.store.test_verify import _failed


def _write(b: Build) -> None:
    print(f"writing {build_cattrs(b).name}")  # a build.log to pack
    out = build_outpath(b)
    with open(os.path.join(out, "out.txt"), "w") as f:
        f.write(f"{build_cattrs(b).name}\n")
    os.symlink("out.txt", os.path.join(out, "link"))
    with open(os.path.join(out, "run.sh"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(os.path.join(out, "run.sh"), 0o755)


def _chain(prefix: str, n: int, r: Any = None) -> DRef:
    d = mkdrv({"name": f"{prefix}0"}, match_only(), build_wrapper(_write), r)
    for i in range(1, n):
        d = mkdrv({"name": f"{prefix}{i}", "dep": d}, match_only(), build_wrapper(_write), r)
    return d


@pytest.fixture
def S2(tmp_path: Any) -> StorageSettings:
    """A second, empty store."""
    return fsinit(mkSS(str(tmp_path / "other")))


def _empty(S: StorageSettings) -> bool:
    return list(allrrefs(S)) == [] and list(alldrefs(S)) == [] and os.listdir(S.tmpdir) == []


def _members(path: str) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


@pytest.mark.parametrize("compression", [None, "gz", "xz"])
def test_round_trip_gives_identical_rrefs_in_a_fresh_store(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any, compression: Any
) -> None:
    """Export then import reproduces the same RRefs, contents, links, modes and metadata."""
    top = realize1(instantiate(_chain, "a", 3, S=S))
    arch = str(tmp_path / "closure.tar")
    export_closure([top], arch, S, compression=compression)
    assert import_closure(arch, S2) == [top]
    closure = {top, *rrefdeps([top], S)}
    assert set(allrrefs(S2)) == closure
    assert set(alldrefs(S2)) == {rref2dref(r) for r in closure}
    assert verify(S=S2).ok
    p2 = rref2path(top, S2)
    assert os.readlink(os.path.join(p2, "link")) == "out.txt"
    assert os.access(os.path.join(p2, "run.sh"), os.X_OK)
    assert rrefmeta(top, S2) == rrefmeta(top, S)
    assert os.listdir(S2.tmpdir) == []
    assert realize1(instantiate(_chain, "a", 3, S=S2)) == top


def _quiet(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("quiet\n")


def test_a_silent_build_without_build_log_round_trips(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """A build that printed nothing has no build.log; export, import, copyclosure and verify
    take the missing log for an empty one, and the copies have none either."""
    top = realize1(
        instantiate(
            lambda r=None: mkdrv({"name": "quiet"}, match_only(), build_wrapper(_quiet), r), S=S
        )
    )
    reserved = os.path.join(rref2path(top, S), "__pylightnix__")
    assert sorted(os.listdir(reserved)) == ["context.json", "meta.json"]
    assert rreflog(top, S) == ""
    arch = str(tmp_path / "quiet.tar")
    export_closure([top], arch, S)
    assert [m for m in _members(arch) if m.endswith("build.log")] == []
    assert import_closure(arch, S2) == [top]
    assert sorted(os.listdir(os.path.join(rref2path(top, S2), "__pylightnix__"))) == [
        "context.json",
        "meta.json",
    ]
    assert rreflog(top, S2) == ""
    assert verify(S=S).ok and verify(S=S2).ok
    S3 = fsinit(mkSS(str(tmp_path / "third")))
    copyclosure([top], S, S3)
    assert rreflog(top, S3) == "" and verify(S=S3).ok


def test_archive_holds_only_the_closure_and_its_manifest(S: StorageSettings, tmp_path: Any) -> None:
    """An unrelated realization of the same store is not exported."""
    top = realize1(instantiate(_chain, "a", 2, S=S))
    other = realize1(instantiate(_chain, "b", 1, S=S))
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)
    names = _members(arch)
    assert names[0] == MANIFEST
    tops = {n.split("/")[0] for n in names[1:]}
    assert tops == {dref_dirname(rref2dref(r)) for r in {top, *rrefdeps([top], S)}}
    assert dref_dirname(rref2dref(other)) not in tops


def test_export_is_deterministic(S: StorageSettings, tmp_path: Any) -> None:
    """Two exports of the same closure are byte-identical (no times, owners)."""
    top = realize1(instantiate(_chain, "a", 2, S=S))
    a, b = str(tmp_path / "1.tar"), str(tmp_path / "2.tar")
    export_closure([top], a, S)
    export_closure([top], b, S)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()


def test_import_is_idempotent_and_completes_a_partial_store(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """Importing twice, or into a store holding part of the closure, ends with the closure once."""
    top = realize1(instantiate(_chain, "a", 3, S=S))
    dep = sorted(rrefdeps([top], S))[0]
    small, big = str(tmp_path / "s.tar"), str(tmp_path / "b.tar")
    export_closure([dep], small, S)
    export_closure([top], big, S)
    import_closure(small, S2)
    assert import_closure(big, S2) == [top]
    assert import_closure(big, S2) == [top]
    assert set(allrrefs(S2)) == {top, *rrefdeps([top], S)}
    assert verify(S=S2).ok


def test_exporting_an_unknown_rref_is_a_ref_error(S: StorageSettings, tmp_path: Any) -> None:
    """A realization that is not stored cannot be exported and no archive is written."""
    bad = RRef(f"rref:{'1' * 32}-{'2' * 32}-x")
    with pytest.raises(RefError, match="is not in the store"):
        export_closure([bad], str(tmp_path / "x.tar"), S)
    assert os.listdir(tmp_path) == ["plx"]


def _tar(path: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    with tarfile.open(path, "w") as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_path_traversal_is_rejected_with_nothing_imported(
    S2: StorageSettings, tmp_path: Any
) -> None:
    """A member climbing out with '..' is refused before anything is written."""
    arch = _tar(str(tmp_path / "evil.tar"), [_file("../../evil.txt", b"x")])
    with pytest.raises(UnsafeArchiveError) as ei:
        import_closure(arch, S2)
    assert ei.value.member == "../../evil.txt"  # type: ignore[attr-defined]
    assert _empty(S2)
    assert not os.path.exists(os.path.join(S2.root, "evil.txt"))


def test_links_out_and_devices_are_rejected_with_nothing_imported(
    S2: StorageSettings, tmp_path: Any
) -> None:
    """An absolute symlink and a character device are both refused."""
    link = tarfile.TarInfo("d/passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    dev = tarfile.TarInfo("d/null")
    dev.type = tarfile.CHRTYPE
    for i, m in enumerate([link, dev]):
        arch = _tar(str(tmp_path / f"evil{i}.tar"), [_file(MANIFEST, b"{}"), (m, None)])
        with pytest.raises(UnsafeArchiveError):
            import_closure(arch, S2)
        assert _empty(S2)


def test_a_truncated_archive_is_rejected_with_nothing_imported(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """Cutting a (compressed) archive short is an ArchiveError and imports nothing."""
    top = realize1(instantiate(_chain, "a", 3, S=S))
    arch = str(tmp_path / "c.tar.gz")
    export_closure([top], arch, S, compression="gz")
    with open(arch, "rb") as f:
        data = f.read()
    cut = str(tmp_path / "cut.tar.gz")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ArchiveError):
        import_closure(cut, S2)
    assert _empty(S2)


def _rewrite(src: str, dst: str, edit: Any) -> str:
    """Copy a tar, passing each (TarInfo, bytes) through ``edit`` (None drops it)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            out = edit(m, data)
            if out is None:
                continue
            m2, d2 = out
            if d2 is not None:
                m2.size = len(d2)
            tout.addfile(m2, io.BytesIO(d2) if d2 is not None else None)
    return dst


def test_corrupted_content_is_an_integrity_error_with_nothing_imported(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """One changed byte in one artifact of the closure rejects the whole import."""
    top = realize1(instantiate(_chain, "a", 3, S=S))
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)
    rhash = parse_rref(top)[0]

    def flip(m: tarfile.TarInfo, d: bytes | None) -> Any:
        if m.name.endswith(f"{rhash}/out.txt") and d is not None:
            return m, b"X" + d[1:]
        return m, d

    bad = _rewrite(arch, str(tmp_path / "bad.tar"), flip)
    with pytest.raises(IntegrityError) as ei:
        import_closure(bad, S2)
    assert ei.value.ref == top  # type: ignore[attr-defined]
    assert _empty(S2)


def test_a_forged_config_is_an_integrity_error(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """A config.json that does not hash to its DRef is refused."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)

    def forge(m: tarfile.TarInfo, d: bytes | None) -> Any:
        return (m, b'{"name":"a0","evil":1}') if m.name.endswith("config.json") else (m, d)

    with pytest.raises(IntegrityError, match="does not hash to it"):
        import_closure(_rewrite(arch, str(tmp_path / "bad.tar"), forge), S2)
    assert _empty(S2)


def test_an_incomplete_closure_is_rejected(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """An archive missing a dependency (manifest edited to match) imports nothing."""
    top = realize1(instantiate(_chain, "a", 2, S=S))
    (dep,) = rrefdeps([top], S)
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)
    dep_dir = f"{dref_dirname(rref2dref(dep))}/{parse_rref(dep)[0]}"

    def drop(m: tarfile.TarInfo, d: bytes | None) -> Any:
        if m.name == MANIFEST and d is not None:
            man = json.loads(d)
            man["rrefs"] = [r for r in man["rrefs"] if r != dep]
            return m, json.dumps(man).encode()
        return None if m.name.startswith(dep_dir) else (m, d)

    with pytest.raises(ArchiveError) as ei:
        import_closure(_rewrite(arch, str(tmp_path / "bad.tar"), drop), S2)
    assert str(ei.value) == (
        f"{tmp_path / 'bad.tar'}: lacks {dep}, a dependency of {top} (incomplete closure); "
        "nothing was imported (export it again with export_closure)"
    )
    assert _empty(S2)


def test_members_the_manifest_does_not_list_are_rejected(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """Anything besides what the manifest lists makes the archive invalid."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)
    with tarfile.open(arch) as tin:
        members = [(m, tin.extractfile(m).read() if m.isreg() else None) for m in tin]  # type: ignore[union-attr]
    extra = _tar(str(tmp_path / "x.tar"), [*members, _file("stowaway.txt", b"hi")])
    with pytest.raises(ArchiveError, match=r"holds 'stowaway\.txt', which its manifest does not"):
        import_closure(extra, S2)
    assert _empty(S2)


def test_a_tar_that_is_not_a_closure_is_rejected(S2: StorageSettings, tmp_path: Any) -> None:
    """A harmless tar without a manifest is not a pylightnix closure."""
    arch = _tar(str(tmp_path / "x.tar"), [_file("readme.txt", b"hi")])
    with pytest.raises(ArchiveError, match="it is not a pylightnix closure archive"):
        import_closure(arch, S2)
    assert _empty(S2)


def test_copyclosure_copies_exactly_the_closure_and_skips_what_exists(
    S: StorageSettings, S2: StorageSettings
) -> None:
    """Copying between stores gives the same RRefs; copying again changes nothing."""
    top = realize1(instantiate(_chain, "a", 3, S=S))
    realize1(instantiate(_chain, "b", 1, S=S))
    assert copyclosure([top], S, S2) == [top]
    closure = {top, *rrefdeps([top], S)}
    assert set(allrrefs(S2)) == closure
    assert copyclosure([top], S, S2) == [top]
    assert set(allrrefs(S2)) == closure
    assert verify(S=S2).ok
    assert os.listdir(S2.tmpdir) == []
    assert copyclosure([top], S, S) == [top]


def test_copyclosure_refuses_a_damaged_source(S: StorageSettings, S2: StorageSettings) -> None:
    """A source realization that no longer matches its RRef is not copied."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    p = rref2path(top, S)
    os.chmod(p, 0o755)
    os.chmod(os.path.join(p, "out.txt"), 0o644)
    with open(os.path.join(p, "out.txt"), "w") as f:
        f.write("edited")
    with pytest.raises(IntegrityError):
        copyclosure([top], S, S2)
    assert _empty(S2)


def test_a_failed_realization_round_trips_and_stays_failed(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """An exported failed realization imports with the same RRef and is still marked failed."""
    r = _failed(S)
    arch = str(tmp_path / "f.tar")
    export_closure([r], arch, S)
    assert import_closure(arch, S2) == [r]
    assert is_failed(r, S2)
    assert verify(S=S2).ok
    ddir = os.path.dirname(rref2path(r, S2))
    with open(os.path.join(ddir, "index.tsv")) as f:
        kinds = [line.split("\t")[:2] for line in f.read().splitlines()]
    assert kinds == [["F", r[5:37]]]


def _import_in_child(root: str, archive: str, start: Any, q: Any) -> None:
    """(child) Wait for the start signal, import, send the result."""
    start.wait(60)
    q.put(import_closure(archive, mkSS(root)))


def test_two_processes_importing_one_archive_at_once_both_succeed(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """Concurrent imports of the same closure race on rename safely: one copy, two successes."""
    ctx = multiprocessing.get_context("spawn")
    top = realize1(instantiate(_chain, "a", 6, S=S))
    arch = str(export_closure([top], str(tmp_path / "c.tar"), S))
    start, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_import_in_child, args=(S2.root, arch, start, q)) for _ in "ab"]
    for p in procs:
        p.start()
    start.set()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert results == [[top], [top]]
    assert set(allrrefs(S2)) == {top, *rrefdeps([top], S)}
    assert verify(S=S2).ok
    assert os.listdir(S2.tmpdir) == []


def test_exporting_into_a_missing_folder_is_a_clear_error(
    S: StorageSettings, tmp_path: Any
) -> None:
    """The archive path must name a file in an existing folder."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    bad = str(tmp_path / "nope" / "c.tar")
    with pytest.raises(StoreError) as ei:
        export_closure([top], bad, S)
    assert str(ei.value) == (
        f"cannot write the archive {bad!r}: its folder does not exist "
        "(name a file in an existing folder)"
    )
    with pytest.raises(StoreError, match="it is a folder"):
        export_closure([top], str(tmp_path), S)


def test_an_unknown_compression_is_refused(S: StorageSettings, tmp_path: Any) -> None:
    """compression must be None, 'gz' or 'xz'; nothing is written otherwise."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    with pytest.raises(OptionError) as ei:
        export_closure([top], str(tmp_path / "c.tar"), S, compression="zip")  # type: ignore[arg-type]
    assert str(ei.value) == "compression='zip': expected None, 'gz' or 'xz'"
    assert (ei.value.option, ei.value.value) == ("compression", "zip")  # type: ignore[attr-defined]
    assert os.listdir(tmp_path) == ["plx"]


def _with_reserved_member(
    S: StorageSettings, tmp_path: Any, member: tarfile.TarInfo, data: bytes | None
) -> tuple[RRef, str]:
    """An exported one-stage closure with one more member in its __pylightnix__ folder."""
    top = realize1(instantiate(_chain, "a", 1, S=S))
    arch = str(tmp_path / "c.tar")
    export_closure([top], arch, S)
    member.name = f"{dref_dirname(rref2dref(top))}/{parse_rref(top)[0]}/__pylightnix__/" + (
        member.name
    )
    with tarfile.open(arch) as tin:
        members = [(m, tin.extractfile(m).read() if m.isreg() else None) for m in tin]  # type: ignore[union-attr]
    members = [(m, d) for m, d in members if not m.name.endswith("/" + member.name.split("/")[-1])]
    if data is not None:
        member.size = len(data)
    return top, _tar(str(tmp_path / "bad.tar"), [*members, (member, data)])


def test_an_unknown_file_in_a_reserved_folder_is_refused_on_import(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """A stray file in __pylightnix__ is an IntegrityError naming it; nothing is imported."""
    top, bad = _with_reserved_member(S, tmp_path, tarfile.TarInfo("trusted.json"), b"{}")
    with pytest.raises(IntegrityError) as ei:
        import_closure(bad, S2)
    assert str(ei.value) == (
        f"{bad}: realization {top} does not match its RRef: its reserved folder __pylightnix__ "
        "holds 'trusted.json', which the store never writes (only context.json, meta.json, "
        "build.log, failure.json belong there); nothing was imported"
    )
    assert _empty(S2)


def test_a_build_log_that_is_a_link_is_refused_on_import(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """A build.log symlink (reading it would leave the store) is refused; nothing is imported."""
    link = tarfile.TarInfo("build.log")
    link.type = tarfile.SYMTYPE
    link.linkname = "meta.json"
    top, bad = _with_reserved_member(S, tmp_path, link, None)
    with pytest.raises(IntegrityError) as ei:
        import_closure(bad, S2)
    assert str(ei.value) == (
        f"{bad}: realization {top} does not match its RRef: its reserved file "
        "__pylightnix__/build.log is not a regular file (a link or folder); nothing was imported"
    )
    assert _empty(S2)


def test_an_imported_build_log_is_kept_as_the_builders_claim(
    S: StorageSettings, S2: StorageSettings, tmp_path: Any
) -> None:
    """A regular build.log is outside the hash: import keeps it as is (docs/store-format.md)."""
    top, edited = _with_reserved_member(S, tmp_path, tarfile.TarInfo("build.log"), b"claimed\n")
    assert import_closure(edited, S2) == [top]
    assert rreflog(top, S2) == "claimed\n"
    assert verify(S=S2).ok


def test_realization_archive_is_deterministic(S: StorageSettings) -> None:
    """One realization packs to the same bytes every time (gzip header without name or time),
    with its files under <rhash>/ in sorted order and no owners or times."""
    from pylightnix.store.archive import write_realization_archive

    r = realize1(instantiate(_chain, "d", 1, S=S))
    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        write_realization_archive(r, S, buf, compresslevel=1)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    assert outs[0][4:8] == b"\0\0\0\0"  # gzip MTIME
    rhash = parse_rref(r)[0]
    with tarfile.open(fileobj=io.BytesIO(outs[0])) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == [
        rhash,
        f"{rhash}/__pylightnix__",
        f"{rhash}/__pylightnix__/build.log",
        f"{rhash}/__pylightnix__/context.json",
        f"{rhash}/__pylightnix__/meta.json",
        f"{rhash}/link",
        f"{rhash}/out.txt",
        f"{rhash}/run.sh",
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    plain = io.BytesIO()
    write_realization_archive(r, S, plain, compresslevel=None)
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue())) as tf:
        assert [m.name for m in tf.getmembers()] == [m.name for m in members]

"""Tests of safe archive extraction (pylightnix.unpack)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pylightnix.errors import ArchiveError, OptionError, UnpackLimitError, UnsafeArchiveError
from pylightnix.unpack import UnpackLimits, archive_kind, safe_extract, unpack_limits


def _tree(root: Path) -> dict[str, str]:
    """Map every path under root to its kind and content (files), link target, or 'dir'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = f.read().decode()
    return out


def _add_file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    tf.addfile(ti, io.BytesIO(data))


def _add_special(tf: tarfile.TarFile, name: str, typ: bytes, linkname: str = "") -> None:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.linkname = linkname
    if typ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = 1, 3
    tf.addfile(ti)


def _good_tar(path: Path, mode: str) -> None:
    with tarfile.open(path, mode) as tf:
        d = tarfile.TarInfo("pkg")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tf.addfile(d)
        _add_file(tf, "pkg/README", b"hello\n")
        _add_file(tf, "pkg/run.sh", b"#!/bin/sh\n", 0o755)
        _add_special(tf, "pkg/readme-link", tarfile.SYMTYPE, "README")
        _add_special(tf, "pkg/README-hard", tarfile.LNKTYPE, "pkg/README")


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".tar", "w"),
        (".tar.gz", "w:gz"),
        (".tgz", "w:gz"),
        (".tar.bz2", "w:bz2"),
        (".tar.xz", "w:xz"),
    ],
)
def test_tar_kinds_extract_files_links_and_exec_bits(
    tmp_path: Path, suffix: str, mode: str
) -> None:
    """Every tar compression extracts files, an inner symlink, a hard link and the exec bit."""
    arc = tmp_path / f"a{suffix}"
    _good_tar(arc, mode)
    dest = tmp_path / "out"
    names = safe_extract(str(arc), str(dest))
    assert names == ["pkg", "pkg/README", "pkg/run.sh", "pkg/readme-link", "pkg/README-hard"]
    assert _tree(dest) == {
        "pkg": "dir",
        "pkg/README": "hello\n",
        "pkg/run.sh": "#!/bin/sh\n",
        "pkg/readme-link": "-> README",
        "pkg/README-hard": "hello\n",
    }
    assert os.stat(dest / "pkg" / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(dest / "pkg" / "README").st_mode & stat.S_IXUSR


def test_zip_extracts_files_dirs_exec_bit_and_inner_symlink(tmp_path: Path) -> None:
    """A zip made on Unix keeps its folders, the exec bit and a symlink pointing inside."""
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/", b"")
        zf.writestr("pkg/data.txt", b"abc" * 1000)
        run = zipfile.ZipInfo("pkg/run.sh")
        run.create_system = 3
        run.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(run, b"#!/bin/sh\n")
        link = zipfile.ZipInfo("pkg/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"data.txt")
    dest = tmp_path / "out"
    assert safe_extract(str(arc), str(dest)) == [
        "pkg",
        "pkg/data.txt",
        "pkg/run.sh",
        "pkg/link",
    ]
    assert _tree(dest) == {
        "pkg": "dir",
        "pkg/data.txt": "abc" * 1000,
        "pkg/run.sh": "#!/bin/sh\n",
        "pkg/link": "-> data.txt",
    }
    assert os.stat(dest / "pkg" / "run.sh").st_mode & stat.S_IXUSR


def test_single_gz_file_is_unpacked_under_its_name_without_suffix(tmp_path: Path) -> None:
    """A plain .gz file becomes one file named after the archive minus '.gz'."""
    arc = tmp_path / "table.csv.gz"
    with gzip.open(arc, "wb") as f:
        f.write(b"a,b\n1,2\n")
    dest = tmp_path / "out"
    assert safe_extract(str(arc), str(dest)) == ["table.csv"]
    assert _tree(dest) == {"table.csv": "a,b\n1,2\n"}


def test_kind_is_sniffed_when_the_name_has_no_suffix(tmp_path: Path) -> None:
    """A tar.gz saved as 'download' is recognised by its contents."""
    arc = tmp_path / "download"
    _good_tar(arc, "w:gz")
    assert safe_extract(str(arc), str(tmp_path / "out"))[:2] == ["pkg", "pkg/README"]


def test_archive_kind_from_names() -> None:
    """File names map to the three kinds; unknown suffixes map to None."""
    assert [archive_kind(n) for n in ("a.TAR.XZ", "b.tbz2", "c.zip", "d.gz", "e.bin")] == [
        "tar",
        "tar",
        "zip",
        "gz",
        None,
    ]


def _outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    return o


def _malicious_tar(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A tar.gz whose last member is the attack ``case``; return it and the bad member."""
    outside = tmp_path / "outside"
    arc = tmp_path / f"{case}.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        _add_file(tf, "ok.txt", b"fine")
        if case == "dotdot":
            bad = "../outside/evil"
            _add_file(tf, bad, b"evil")
        elif case == "absolute":
            bad = str(outside / "evil")
            _add_file(tf, bad, b"evil")
        elif case == "symlink-etc":
            bad = "etc"
            _add_special(tf, bad, tarfile.SYMTYPE, "/etc")
            _add_file(tf, "etc/evil", b"evil")
        elif case == "symlink-up-then-file":
            bad = "sub/up"
            _add_special(tf, bad, tarfile.SYMTYPE, "../../outside")
            _add_file(tf, "sub/up/evil", b"evil")
        elif case == "inner-link-then-file":
            _add_file(tf, "dir/x", b"x")
            _add_special(tf, "alias", tarfile.SYMTYPE, "dir")
            bad = "alias/evil"
            _add_file(tf, bad, b"evil")
        elif case == "hardlink-outside":
            bad = "hard"
            _add_special(tf, bad, tarfile.LNKTYPE, str(outside / "secret"))
        elif case == "hardlink-dotdot":
            bad = "hard"
            _add_special(tf, bad, tarfile.LNKTYPE, "../outside/secret")
        elif case == "link-chain":
            # 'dot -> .' is inside and 'up/../x' looks inside, but dot/../x is dest/../x.
            _add_special(tf, "dot", tarfile.SYMTYPE, ".")
            bad = "chain"
            _add_special(tf, bad, tarfile.SYMTYPE, "dot/../outside/secret")
        elif case == "chardev":
            bad = "null"
            _add_special(tf, bad, tarfile.CHRTYPE)
        elif case == "fifo":
            bad = "pipe"
            _add_special(tf, bad, tarfile.FIFOTYPE)
        else:
            raise AssertionError(case)
    return arc, bad


TAR_ATTACKS = [
    "dotdot",
    "absolute",
    "symlink-etc",
    "symlink-up-then-file",
    "inner-link-then-file",
    "hardlink-outside",
    "hardlink-dotdot",
    "link-chain",
    "chardev",
    "fifo",
]


@pytest.mark.parametrize("case", TAR_ATTACKS)
def test_malicious_tar_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    """Each tar attack raises UnsafeArchiveError naming the member; dest and outside stay empty."""
    outside = _outside(tmp_path)
    (outside / "secret").write_text("secret")
    arc, bad = _malicious_tar(tmp_path, case)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract(str(arc), str(dest))
    assert ei.value.member == bad
    assert ei.value.archive == str(arc)
    assert repr(bad) in str(ei.value)
    assert _tree(dest) == {"keep.txt": "mine"}
    assert _tree(outside) == {"secret": "secret"}


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes, ftype: int = stat.S_IFREG) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (ftype | 0o644) << 16
    zf.writestr(info, data)


@pytest.mark.parametrize(
    "case",
    [
        "dotdot",
        "absolute",
        "backslash-dotdot",
        "symlink-out",
        "link-then-file",
        "link-chain",
        "chardev",
    ],
)
def test_malicious_zip_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    """Each zip attack raises UnsafeArchiveError naming the member; dest and outside stay empty."""
    outside = _outside(tmp_path)
    arc = tmp_path / f"{case}.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        _zip_entry(zf, "ok.txt", b"fine")
        if case == "dotdot":
            bad = "a/../../outside/evil"
            # ZipFile.writestr keeps the name as given; extraction must refuse it.
            _zip_entry(zf, bad, b"evil")
        elif case == "absolute":
            bad = str(outside / "evil")
            _zip_entry(zf, bad, b"evil")
        elif case == "backslash-dotdot":
            bad = "..\\outside\\evil"
            _zip_entry(zf, bad, b"evil")
        elif case == "symlink-out":
            bad = "up"
            _zip_entry(zf, bad, str(outside).encode(), stat.S_IFLNK)
        elif case == "link-then-file":
            _zip_entry(zf, "d/x", b"x")
            _zip_entry(zf, "alias", b"d", stat.S_IFLNK)
            bad = "alias/evil"
            _zip_entry(zf, bad, b"evil")
        elif case == "link-chain":
            _zip_entry(zf, "dot", b".", stat.S_IFLNK)
            bad = "chain"
            _zip_entry(zf, bad, b"dot/../outside", stat.S_IFLNK)
        else:
            bad = "null"
            _zip_entry(zf, bad, b"", stat.S_IFCHR)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract(str(arc), str(dest))
    assert (ei.value.member, ei.value.archive) == (bad, str(arc))
    assert _tree(dest) == {}
    assert _tree(outside) == {}


def test_truncated_tar_gz_raises_archive_error_and_leaves_dest_as_it_was(tmp_path: Path) -> None:
    """A tar.gz cut in half is reported as corrupt; entries already extracted are removed."""
    arc = tmp_path / "a.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        _add_file(tf, "first.txt", b"1")
        _add_file(tf, "big.bin", os.urandom(200_000))
    data = arc.read_bytes()
    arc.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("k")
    with pytest.raises(ArchiveError, match="corrupt or truncated") as ei:
        safe_extract(str(arc), str(dest))
    assert ei.value.archive == str(arc)
    assert _tree(dest) == {"keep": "k"}


def test_corrupt_zip_and_gz_raise_archive_error(tmp_path: Path) -> None:
    """A zip with a damaged member and a gz with garbage both raise ArchiveError."""
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.txt", b"x" * 10_000)
    raw = bytearray(z.read_bytes())
    raw[40:60] = b"\0" * 20  # inside the compressed data of x.txt
    z.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError):
        safe_extract(str(z), str(tmp_path / "dz"))
    assert _tree(tmp_path / "dz") == {}
    g = tmp_path / "b.gz"
    g.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        safe_extract(str(g), str(tmp_path / "dg"))
    assert _tree(tmp_path / "dg") == {}


def test_unknown_kind_and_missing_archive_are_clear_errors(tmp_path: Path) -> None:
    """An unknown kind= value, an unrecognisable file and a missing file each raise ArchiveError."""
    f = tmp_path / "notes.txt"
    f.write_text("plain text")
    with pytest.raises(ArchiveError, match=r"unknown archive kind 'rar'"):
        safe_extract(str(f), str(tmp_path / "o"), kind="rar")
    with pytest.raises(ArchiveError, match="cannot tell what kind of archive"):
        safe_extract(str(f), str(tmp_path / "o"))
    with pytest.raises(ArchiveError, match="does not exist"):
        safe_extract(str(tmp_path / "nope.tar"), str(tmp_path / "o"))


def test_errors_pickle_with_their_attributes(tmp_path: Path) -> None:
    """UnsafeArchiveError survives pickling with .member and .archive."""
    import pickle

    arc, bad = _malicious_tar(tmp_path, "dotdot")
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract(str(arc), str(tmp_path / "d"))
    e2 = pickle.loads(pickle.dumps(ei.value))
    assert (type(e2), str(e2), e2.member, e2.archive) == (
        UnsafeArchiveError,
        str(ei.value),
        bad,
        str(arc),
    )


def _zeros_tar_bz2(path: Path, mib: int) -> None:
    """A .tar.bz2 holding one file of ``mib`` MiB of zeros (a few hundred bytes on disk)."""
    with tarfile.open(path, "w:bz2") as tf:
        ti = tarfile.TarInfo("zeros.bin")
        ti.size = mib << 20
        tf.addfile(ti, io.BytesIO(bytes(ti.size)))


def test_a_decompression_bomb_is_refused_by_default_before_writing(tmp_path: Path) -> None:
    """A few hundred bytes unpacking to 100 MiB pass the ratio limit: refused, nothing written."""
    arc = tmp_path / "bomb.tar.bz2"
    _zeros_tar_bz2(arc, 100)
    size = os.path.getsize(arc)
    dest = tmp_path / "d"
    with pytest.raises(UnpackLimitError) as ei:
        safe_extract(str(arc), str(dest))
    assert str(ei.value) == (
        f"archive {str(arc)!r} ({size} B) unpacks to more than 1000 times its size "
        "(100.0 MiB so far, max_ratio=1000): refusing to extract it (nothing was kept); if you "
        "trust it, raise max_ratio= or $PYLIGHTNIX_UNPACK_MAX_RATIO (0: no limit)"
    )
    assert (ei.value.limit, ei.value.value) == ("max_ratio", 1000.0)  # type: ignore[attr-defined]
    assert os.listdir(dest) == []
    assert safe_extract(str(arc), str(dest), max_ratio=0) == ["zeros.bin"]
    assert os.path.getsize(dest / "zeros.bin") == 100 << 20


def _payloads(tmp_path: Path) -> list[Path]:
    """A tar.gz, a zip and a .gz, each unpacking to 3000 bytes."""
    tgz = tmp_path / "a.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        _add_file(tf, "one", b"1" * 1500)
        _add_file(tf, "two", b"2" * 1500)
    zp = tmp_path / "a.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("one", b"1" * 1500)
        zf.writestr("two", b"2" * 1500)
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(b"3" * 3000))
    return [tgz, zp, gz]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["tar.gz", "zip", "gz"])
def test_the_size_limit_counts_every_kind_and_leaves_nothing(tmp_path: Path, which: int) -> None:
    """max_size below the unpacked size refuses each kind, naming the limit; dest is as before."""
    arc = _payloads(tmp_path)[which]
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "keep").write_text("k")
    with pytest.raises(UnpackLimitError) as ei:
        safe_extract(str(arc), str(dest), max_size=2999)
    assert str(ei.value) == (
        f"archive {str(arc)!r} unpacks to more than 2.9 KiB (max_size=2999): refusing to "
        "extract it (nothing was kept); if you trust it, raise max_size= or "
        "$PYLIGHTNIX_UNPACK_MAX_SIZE (0: no limit)"
    )
    assert _tree(dest) == {"keep": "k"}
    assert safe_extract(str(arc), str(dest), max_size=3000) != []


def test_limits_come_from_arguments_then_environment_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PYLIGHTNIX_UNPACK_MAX_SIZE applies when no argument is given; an argument beats it."""
    assert unpack_limits() == UnpackLimits(1 << 40, 1000.0)
    monkeypatch.setenv("PYLIGHTNIX_UNPACK_MAX_SIZE", "2999")
    monkeypatch.setenv("PYLIGHTNIX_UNPACK_MAX_RATIO", "5")
    assert unpack_limits() == UnpackLimits(2999, 5.0)
    assert unpack_limits(max_size=0, max_ratio=0) == UnpackLimits(0, 0)
    zp = _payloads(tmp_path)[1]
    with pytest.raises(UnpackLimitError, match="max_size=2999"):
        safe_extract(str(zp), str(tmp_path / "d"))
    assert safe_extract(str(zp), str(tmp_path / "d"), max_size=0) == ["one", "two"]


@pytest.mark.parametrize("raw", ["-1", "lots", "nan", "inf"])
def test_a_bad_limit_in_the_environment_is_an_option_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """A limit that is not a non-negative number is refused, naming the variable."""
    monkeypatch.setenv("PYLIGHTNIX_UNPACK_MAX_SIZE", raw)
    with pytest.raises(OptionError) as ei:
        safe_extract(str(_payloads(tmp_path)[1]), str(tmp_path / "d"))
    assert str(ei.value) == (
        f"$PYLIGHTNIX_UNPACK_MAX_SIZE={raw!r} is not a non-negative number (0 means no limit)"
    )
    with pytest.raises(OptionError, match=r"max_ratio=-2: expected a non-negative number"):
        unpack_limits(max_ratio=-2)


def test_a_tar_holding_a_path_twice_is_refused(tmp_path: Path) -> None:
    """Two members with one path are refused, as in zip; nothing is extracted."""
    arc = tmp_path / "dup.tar"
    with tarfile.open(arc, "w") as tf:
        _add_file(tf, "pkg/a.txt", b"first")
        _add_file(tf, "pkg/./a.txt", b"second")
    dest = tmp_path / "d"
    with pytest.raises(ArchiveError) as ei:
        safe_extract(str(arc), str(dest))
    assert str(ei.value) == (
        f"archive {str(arc)!r} holds 'pkg/./a.txt' twice: refusing to guess which one is meant"
    )
    assert os.listdir(dest) == []


def test_a_tar_member_is_never_written_through_a_same_name_link(tmp_path: Path) -> None:
    """A file after a symlink of the same name is refused: the link's target keeps its bytes."""
    arc = tmp_path / "through.tar"
    with tarfile.open(arc, "w") as tf:
        _add_file(tf, "target.txt", b"original")
        _add_special(tf, "a", tarfile.SYMTYPE, "target.txt")
        _add_file(tf, "a", b"overwritten")
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="holds 'a' twice"):
        safe_extract(str(arc), str(dest))
    assert os.listdir(dest) == []


def test_a_folder_listed_twice_in_a_tar_is_fine(tmp_path: Path) -> None:
    """Repeated folder entries (as some tar tools write) extract normally."""
    arc = tmp_path / "dirs.tar"
    with tarfile.open(arc, "w") as tf:
        for _ in range(2):
            d = tarfile.TarInfo("pkg")
            d.type = tarfile.DIRTYPE
            d.mode = 0o755
            tf.addfile(d)
        _add_file(tf, "pkg/x", b"x")
    assert safe_extract(str(arc), str(tmp_path / "d")) == ["pkg", "pkg", "pkg/x"]


def test_errors_name_the_given_archive_name_not_the_private_copy(tmp_path: Path) -> None:
    """name= is what every error calls the archive (the user's file, not a temporary copy)."""
    arc = tmp_path / "tmp-copy.zip"
    arc.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArchiveError) as ei:
        safe_extract(str(arc), str(tmp_path / "d"), name="https://example.org/data.zip")
    assert str(ei.value).startswith("archive 'https://example.org/data.zip' is corrupt")
    assert ei.value.archive == "https://example.org/data.zip"  # type: ignore[attr-defined]
    assert "tmp-copy" not in str(ei.value)

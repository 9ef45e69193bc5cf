"""The original's file, time and hashing helpers (legacy/utils.py, store/links.py times)."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

import pytest

from pylightnix import ExtraMissingError, StoreError, hash_tree
from pylightnix.legacy import utils as U
from pylightnix.store.links import TIME_FORMAT, parsetime, timestring

D1 = "dref:" + "a" * 32 + "-one"
R1 = "rref:" + "c" * 32 + "-" + "a" * 32 + "-one"


def test_time_strings_round_trip() -> None:
    """timestring writes the original's format; parsetime reads it back (None if malformed)."""
    assert TIME_FORMAT == "%y%m%d-%H:%M:%S:%f%z"
    t = 1588972819.25
    assert parsetime(timestring(t)) == t
    assert parsetime("200509-00:20:19:089121+0300") == 1588972819.089121
    assert parsetime("not a time") is None


def test_hash_helpers(tmp_path: Any) -> None:
    """datahash/filehash/dirhash/encode are sha256 of bytes, and dirhash is hash_tree."""
    assert U.encode("é") == "é".encode()
    assert U.datahash([b"a", ("hint", b"b")]) == hashlib.sha256(b"ab").hexdigest()
    f = tmp_path / "f"
    f.write_bytes(b"xyz")
    assert U.filehash(str(f)) == hashlib.sha256(b"xyz").hexdigest()
    assert U.dirhash(str(tmp_path)) == hash_tree(str(tmp_path))
    assert U.dicthash({"b": 1, "a": 2}) == U.dicthash({"a": 2, "b": 1})
    assert U.pyobjhash([test_hash_helpers]) == U.pyobjhash([test_hash_helpers])
    assert len(U.pyobjhash([])) == 32


def test_file_helpers(tmp_path: Any) -> None:
    """read/write/try* helpers read files or give their defaults."""
    p = str(tmp_path / "a.json")
    U.writejson(p, {"k": [1, 2]})
    assert U.readjson(p) == {"k": [1, 2]}
    assert U.tryreadjson(str(tmp_path / "missing")) is None
    assert U.tryreadjson_def(str(tmp_path / "missing"), {"d": 1}) == {"d": 1}
    s = str(tmp_path / "s.txt")
    U.writestr(s, "text")
    assert (U.readstr(s), U.tryreadstr(s), U.tryreadstr_def(s + "x", "def")) == (
        "text",
        "text",
        "def",
    )
    assert U.trywrite(str(tmp_path / "no" / "dir" / "f"), "x") is False
    assert U.trycatch(lambda: 1 // 0, "fallback") == "fallback"
    assert U.concat([[1], [2, 3]]) == [1, 2, 3]


def test_folder_helpers(tmp_path: Any) -> None:
    """dirsize counts bytes, dircp/dirchmod/dirrm copy, protect and remove trees."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"12345")
    os.symlink("sub/f", src / "link")
    assert U.dirsize(str(src)) == 5
    dst = str(tmp_path / "dst")
    U.dircp(str(src), dst, make_rw=True)
    assert os.readlink(os.path.join(dst, "link")) == "sub/f"
    U.dirchmod(dst, "ro")
    assert not os.stat(os.path.join(dst, "sub", "f")).st_mode & stat.S_IWUSR
    U.dirchmod(dst, "rw")
    with pytest.raises(StoreError) as ei:
        U.dirchmod(dst, "x")
    assert str(ei.value) == f"dirchmod({dst!r}, 'x'): mode is 'ro' or 'rw'"
    U.dirchmod(dst, "ro")
    U.dirrm(dst)
    assert not os.path.exists(dst)
    U.dirrm(dst)
    with pytest.raises(StoreError) as ei:
        U.dirrm(dst, ignore_not_found=False)
    assert str(ei.value) == f"dirrm: {dst!r} does not exist"
    f = str(src / "sub" / "f")
    U.filero(f)
    assert not os.stat(f).st_mode & stat.S_IWUSR
    U.filerw(f)
    assert os.stat(f).st_mode & stat.S_IWUSR


def test_mklogdir_and_forcelink(tmp_path: Any) -> None:
    """mklogdir makes <tag>_<time> with sub-folders and points _<tag>_latest at it."""
    d = U.mklogdir("run", str(tmp_path), subdirs=["a", "b"], timetag="T1")
    assert d == str(tmp_path / "run_T1")
    assert sorted(os.listdir(d)) == ["a", "b"]
    assert os.readlink(tmp_path / "_run_latest") == "run_T1"
    U.mklogdir("run", str(tmp_path), timetag="T2")
    assert os.readlink(tmp_path / "_run_latest") == "run_T2"


def test_executables() -> None:
    """try_executable finds tools on PATH; a missing one raises when used."""
    assert U.get_executable("sh").endswith("/sh")
    get = U.try_executable("no-such-tool-here", None, "install it")
    with pytest.raises(ExtraMissingError) as ei:
        get()
    assert str(ei.value) == "executable 'no-such-tool-here' not found on PATH. install it"


def test_traverse_and_scan() -> None:
    """traverse_* rebuild nested values; scanref_* collect DRefs and RRefs."""
    got = U.traverse_dict({"a": [1, (2, {"b": 3})]}, lambda k, v: v * 10)
    assert got == {"a": [10, (20, {"b": 30})]}
    assert U.traverse_list([1, 2], lambda i, v: (i, v)) == [(0, 1), (1, 2)]
    assert U.scanref_dict({"x": [D1, {"y": R1}], "z": "plain"}) == ([D1], [R1])
    assert U.scanref_list([R1, [D1]]) == ([D1], [R1])

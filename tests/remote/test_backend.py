"""Remote primitives on every backend, open_remote's forms, pickling, the missing extra."""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import pytest

from pylightnix.errors import ExtraMissingError, RemoteError
from pylightnix.remote import Remote, open_remote
from tests.remote.conftest import Backend


class TestPrimitives:
    """read/write/exists/listdir/upload/download/delete, written through the writer and
    read through the reader of each backend."""

    def test_write_then_read_exists_and_list(self, backend: Backend) -> None:
        """Written objects read back, exist, and list by folder, sorted."""
        backend.writer.write("d/b.json", b"B")
        backend.writer.write("d/a.json", b"A")
        backend.writer.write("d/sub/x", b"X")
        assert backend.reader.read("d/a.json") == b"A"
        assert backend.reader.exists("d/b.json")
        assert backend.reader.listdir("d") == ["a.json", "b.json", "sub"]

    def test_missing_objects(self, backend: Backend, tmp_path: Any) -> None:
        """Reading, listing and downloading what is not there answer None, [] and False."""
        assert backend.reader.read("nope.json") is None
        assert not backend.reader.exists("nope.json")
        assert backend.reader.listdir("no/such/folder") == []
        local = str(tmp_path / "dl")
        assert backend.reader.download("nope.json", local) is False
        assert not os.path.exists(local)

    def test_upload_download_with_byte_progress(self, backend: Backend, tmp_path: Any) -> None:
        """A 3 MiB file goes up and comes back byte for byte; progress counts every byte."""
        data = os.urandom(3 << 20)
        src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
        with open(src, "wb") as f:
            f.write(data)
        up: list[int] = []
        backend.writer.upload(src, "archives/big", up.append)
        down: list[int] = []
        assert backend.reader.download("archives/big", dst, down.append)
        with open(dst, "rb") as f:
            assert f.read() == data
        assert sum(up) == len(data)
        assert sum(down) == len(data)

    def test_write_replaces_and_delete_removes(self, backend: Backend) -> None:
        """A second write replaces an object; delete removes it and tolerates absence."""
        backend.writer.write("f", b"1")
        backend.writer.write("f", b"2")
        assert backend.reader.read("f") == b"2"
        backend.writer.delete("f")
        backend.writer.delete("f")
        assert backend.reader.read("f") is None

    def test_batched_reads_and_writes(self, backend: Backend) -> None:
        """write_many stores every item; read_many answers in order, None where missing."""
        backend.writer.write_many([(f"m/{i}.json", bytes([i])) for i in range(20)])
        got = backend.reader.read_many(["m/3.json", "m/none.json", "m/19.json"])
        assert got == [b"\x03", None, b"\x13"]
        assert backend.reader.listdir("m") == sorted(f"{i}.json" for i in range(20))

    def test_remote_pickles_and_works_after(self, backend: Backend) -> None:
        """A used Remote pickles to its URL and options and works in the copy."""
        backend.writer.write("p", b"P")
        copy = pickle.loads(pickle.dumps(backend.reader))
        assert copy == backend.reader
        assert copy.read("p") == b"P"


def test_local_writes_leave_no_temporary_names(tmp_path: Any) -> None:
    """Writes to a folder go through a temporary name that listings never show."""
    r = open_remote(str(tmp_path / "c"))
    r.write("d/x", b"1")
    with open(tmp_path / "c" / "d" / ".tmp-123-leftover", "wb"):
        pass
    assert r.listdir("d") == ["x"]
    assert sorted(os.listdir(tmp_path / "c" / "d")) == [".tmp-123-leftover", "x"]


def test_open_remote_forms(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain and relative paths, file:// URLs and PathLikes name the same folder."""
    monkeypatch.chdir(tmp_path)
    want = os.path.join(str(tmp_path), "cache")
    assert open_remote("cache").url == want
    assert open_remote(f"file://{want}").url == want
    assert open_remote(tmp_path / "cache").url == want
    r = open_remote("s3://b/p", endpoint_url="http://127.0.0.1:1")
    assert (r.url, r.storage_options) == ("s3://b/p", {"endpoint_url": "http://127.0.0.1:1"})
    assert open_remote(r) is r
    assert open_remote(r, anon=True).storage_options == {
        "endpoint_url": "http://127.0.0.1:1",
        "anon": True,
    }
    assert (open_remote("https://h/c").read_only, open_remote(want).read_only) == (True, False)


def test_open_remote_refuses_an_empty_url() -> None:
    """An empty URL is a RemoteError saying what is expected."""
    with pytest.raises(RemoteError) as e:
        open_remote("  ")
    assert str(e.value) == (
        "open_remote('  '): expected a folder path or a URL such as s3://bucket/prefix "
        "or https://host/cache"
    )


def test_writes_to_http_are_refused(tmp_path: Any) -> None:
    """Every write primitive of an http remote is refused before any request."""
    r = open_remote("http://127.0.0.1:9/c")
    for call in (
        lambda: r.write("x", b""),
        lambda: r.upload(str(tmp_path), "x"),
        lambda: r.delete("x"),
    ):
        with pytest.raises(RemoteError) as e:
            call()
        assert "is read-only" in str(e.value)


def test_missing_extra_says_what_to_install(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fsspec, using a remote says `pip install 'pylightnix-ng[remote]'`."""
    monkeypatch.setitem(sys.modules, "fsspec", None)
    r = Remote(str(tmp_path))
    with pytest.raises(ExtraMissingError) as e:
        r.read("x")
    assert (
        str(e.value) == "remote caches need fsspec: pip install 'pylightnix-ng[remote]'"
        " (in a checkout: pip install -e '.[remote]')"
    )
    assert e.value.extra == "remote"  # type: ignore[attr-defined]

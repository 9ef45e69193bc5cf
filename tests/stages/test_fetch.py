"""Tests of fetchurl, fetchlocal and unpackref against a real local HTTP server."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pylightnix import (
    BuildError,
    ConfigError,
    ProgressEvent,
    StorageSettings,
    alldrefs,
    allrrefs,
    instantiate,
    instantiate_inplace,
    progress_hook,
    realize1,
    realize_inplace,
    rref2path,
    store_initialize,
)
from pylightnix.errors import (
    ArchiveError,
    FetchError,
    HashMismatchError,
    OptionError,
    UnpackLimitError,
    UnsafeArchiveError,
)
from pylightnix.stages.fetch import fetchlocal, fetchurl, stall_rule, unpackref
from tests.serve import serve_dir


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tree(root: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel.startswith("__pylightnix__"):
                continue
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = f.read().decode(errors="replace")
    return out


def _make_archive(path: Path, kind: str) -> dict[str, str]:
    """Write an archive of the given kind; return the tree it unpacks to."""
    files = {"pkg/a.txt": "alpha\n", "pkg/sub/b.txt": "beta\n"}
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for k, v in files.items():
                zf.writestr(k, v)
        return {"pkg": "dir", "pkg/sub": "dir", **files}
    if kind == "gz":
        with gzip.open(path, "wb") as f:
            f.write(b"just one file\n")
        return {path.name[:-3]: "just one file\n"}
    mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
    with tarfile.open(path, mode[kind]) as tf:
        for k, v in files.items():
            ti = tarfile.TarInfo(k)
            ti.size = len(v)
            tf.addfile(ti, io.BytesIO(v.encode()))
    return {"pkg": "dir", "pkg/sub": "dir", **files}


def _nothing_stored(S: StorageSettings) -> None:
    assert list(allrrefs(S)) == []
    assert os.listdir(S.tmpdir) == []


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """The folder the test's HTTP server serves."""
    d = tmp_path / "www"
    d.mkdir()
    return d


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tgz", "tar.bz2", "tar.xz", "zip", "gz"])
def test_fetchurl_unpacks_each_archive_kind(S: StorageSettings, www: Path, kind: str) -> None:
    """Each archive kind served over HTTP is downloaded, checked and unpacked (archive dropped)."""
    arc = www / f"data.{kind}"
    expected = _make_archive(arc, kind)
    with serve_dir(str(www)) as srv:
        rref = realize1(
            instantiate(fetchurl, url=f"{srv.url}/data.{kind}", sha256=_sha256(arc), S=S)
        )
    assert _tree(rref2path(rref, S)) == expected
    assert srv.requests == [f"/data.{kind}"]


def test_fetchurl_as_is_keeps_the_file_and_unpack_mode_keeps_both(
    S: StorageSettings, www: Path
) -> None:
    """mode='as-is' stores the file untouched; mode='unpack' stores the tree and the archive."""
    arc = www / "data.tar.gz"
    tree = _make_archive(arc, "tar.gz")
    h = _sha256(arc)
    with serve_dir(str(www)) as srv:
        r1 = realize1(
            instantiate(fetchurl, url=f"{srv.url}/data.tar.gz", sha256=h, mode="as-is", S=S)
        )
        r2 = realize1(
            instantiate(
                fetchurl, url=f"{srv.url}/data.tar.gz", sha256=h, mode="unpack", name="both", S=S
            )
        )
    assert sorted(os.listdir(rref2path(r1, S))) == ["__pylightnix__", "data.tar.gz"]
    assert (Path(rref2path(r1, S)) / "data.tar.gz").read_bytes() == arc.read_bytes()
    t2 = _tree(rref2path(r2, S))
    assert t2.pop("data.tar.gz") == arc.read_bytes().decode(errors="replace")
    assert t2 == tree


def test_fetchurl_file_url_and_sha1(S: StorageSettings, tmp_path: Path) -> None:
    """A file:// URL with a sha1 hash is fetched like an HTTP one."""
    arc = tmp_path / "x.zip"
    tree = _make_archive(arc, "zip")
    sha1 = hashlib.sha1(arc.read_bytes()).hexdigest()
    rref = realize1(instantiate(fetchurl, url=arc.as_uri(), sha1=sha1, S=S))
    assert _tree(rref2path(rref, S)) == tree


def test_fetchurl_reuses_the_realization_without_downloading_again(
    S: StorageSettings, www: Path
) -> None:
    """A second realize of the same fetch matches the stored realization: no request is made."""
    arc = www / "d.tgz"
    _make_archive(arc, "tgz")
    with serve_dir(str(www)) as srv:
        url = f"{srv.url}/d.tgz"
        r1 = realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), S=S))
        r2 = realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), S=S))
    assert (r1, srv.requests) == (r2, ["/d.tgz"])


def test_hash_mismatch_stores_nothing_and_a_retry_with_the_right_hash_succeeds(
    S: StorageSettings, www: Path
) -> None:
    """A wrong sha256 fails showing both hashes, leaves no file behind; the right one then works."""
    arc = www / "d.tar"
    tree = _make_archive(arc, "tar")
    good = _sha256(arc)
    bad = "0" * 64
    with serve_dir(str(www)) as srv:
        url = f"{srv.url}/d.tar"
        with pytest.raises(BuildError) as ei:
            realize1(instantiate(fetchurl, url=url, sha256=bad, S=S))
        cause = ei.value.__cause__
        assert isinstance(cause, HashMismatchError)
        assert (cause.url, cause.algo, cause.expected, cause.actual) == (url, "sha256", bad, good)
        assert f"expected {bad}, got {good}" in str(ei.value)
        _nothing_stored(S)
        rref = realize1(instantiate(fetchurl, url=url, sha256=good, S=S))
    assert _tree(rref2path(rref, S)) == tree


def test_http_404_names_the_url_and_stores_nothing(S: StorageSettings, tmp_path: Path) -> None:
    """A missing file on the server raises FetchError with the status and the URL."""
    with serve_dir(str(tmp_path)) as srv:
        url = f"{srv.url}/gnu/nothing-1.0.tar.gz"
        with pytest.raises(BuildError) as ei:
            realize1(instantiate(fetchurl, url=url, sha256="1" * 64, S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, FetchError)
    assert cause.url == url
    assert str(cause).startswith(f"cannot download {url}: the server answered HTTP 404 ")
    _nothing_stored(S)


def test_connection_refused_names_the_url(S: StorageSettings) -> None:
    """A port nobody listens on gives a FetchError naming the URL."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/x.tar.gz"
    with pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchurl, url=url, sha256="1" * 64, S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, FetchError)
    assert cause.url == url
    assert str(cause).startswith(f"cannot download {url}: ")
    assert "Connection refused" in str(cause)
    _nothing_stored(S)


def test_malicious_archive_from_the_net_is_refused_and_nothing_escapes(
    S: StorageSettings, tmp_path: Path, www: Path
) -> None:
    """A served tar with a '..' member is refused; nothing is stored or written outside."""
    arc = www / "evil.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        ti = tarfile.TarInfo("../../../../evil.txt")
        ti.size = 4
        tf.addfile(ti, io.BytesIO(b"evil"))
    before = sorted(os.listdir(tmp_path))
    with serve_dir(str(www)) as srv, pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchurl, url=f"{srv.url}/evil.tar.gz", sha256=_sha256(arc), S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, UnsafeArchiveError)
    assert cause.member == "../../../../evil.txt"
    _nothing_stored(S)
    assert sorted(os.listdir(tmp_path)) == before
    assert not any("evil.txt" in fs for _, _, fs in os.walk(tmp_path))


def test_malicious_zip_from_the_net_is_refused(
    S: StorageSettings, tmp_path: Path, www: Path
) -> None:
    """A served zip with an absolute member path is refused and nothing is stored."""
    arc = www / "evil.zip"
    target = tmp_path / "evil-abs.txt"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr(zipfile.ZipInfo(str(target)), b"evil")
    with serve_dir(str(www)) as srv, pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchurl, url=f"{srv.url}/evil.zip", sha256=_sha256(arc), S=S))
    assert isinstance(ei.value.__cause__, UnsafeArchiveError)
    assert not target.exists()
    _nothing_stored(S)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs exactly one of sha256= or sha1= (got 0)"),
        ({"sha256": "a" * 64, "sha1": "b" * 40}, "needs exactly one of sha256= or sha1= (got 2)"),
        ({"sha256": "xyz"}, "sha256='xyz' is not 64 hexadecimal characters"),
        ({"sha256": "a" * 64, "mode": "extract"}, "mode='extract' is not one of"),
        ({"sha256": "a" * 64, "filename": "../x"}, "filename='../x' must be a plain file name"),
    ],
)
def test_bad_fetchurl_arguments_are_config_errors_and_store_nothing(
    S: StorageSettings, kwargs: dict[str, str], message: str
) -> None:
    """Missing/double/malformed hashes, unknown modes and bad file names fail at instantiate."""
    with pytest.raises(ConfigError) as ei:
        instantiate(fetchurl, url="http://127.0.0.1/x.tar.gz", S=S, **kwargs)
    assert message in str(ei.value)
    assert list(alldrefs(S)) == []


def test_bad_fetchlocal_arguments_are_config_errors(S: StorageSettings) -> None:
    """fetchlocal needs one of path=/envname=, and filename= with envname=."""
    with pytest.raises(ConfigError) as ei:
        instantiate(fetchlocal, sha256="a" * 64, S=S)
    assert str(ei.value) == "fetchlocal(None) needs exactly one of path= or envname="
    with pytest.raises(ConfigError) as ei:
        instantiate(fetchlocal, envname="PLX_X", sha256="a" * 64, S=S)
    assert str(ei.value) == (
        "fetchlocal('PLX_X'): with envname= also give filename= (the path is only known at "
        "build time)"
    )
    with pytest.raises(ConfigError) as ei:
        instantiate(fetchlocal, "/x/a.tgz", sha1="b" * 40, mode="zip", S=S)
    assert str(ei.value) == (
        "fetchlocal('/x/a.tgz'): mode='zip' is not one of 'unpack,remove', 'unpack', 'as-is'"
    )
    assert list(alldrefs(S)) == []


def test_unknown_scheme_is_refused(S: StorageSettings) -> None:
    """An ftp:// URL is refused at instantiate with the URL in the message."""
    with pytest.raises(ConfigError, match=r"url='ftp://h/x.tgz' is not an http/https/file URL"):
        instantiate(fetchurl, url="ftp://h/x.tgz", sha256="a" * 64, S=S)


def test_download_progress_goes_to_the_hook_and_short_downloads_print_nothing(
    S: StorageSettings, www: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The hook gets download events ending at the full size; stderr stays silent."""
    arc = www / "big.bin.gz"
    with gzip.open(arc, "wb", compresslevel=1) as f:
        f.write(os.urandom(3 << 20))
    size = arc.stat().st_size
    events: list[ProgressEvent] = []
    with serve_dir(str(www)) as srv, progress_hook(events.append):
        url = f"{srv.url}/big.bin.gz"
        realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), S=S))
    dl = [e for e in events if e.kind == "download"]
    assert dl
    last = dl[-1]
    assert (last.done, last.total, last.name, last.extra["url"]) == (size, size, "big_bin", url)
    assert last.extra["rate"] > 0
    assert [e.done for e in dl] == sorted(e.done for e in dl)
    capfd.readouterr()
    with serve_dir(str(www)) as srv:
        url = f"{srv.url}/big.bin.gz"
        realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), name="quiet", S=S))
    assert srv.requests == ["/big.bin.gz"]
    assert capfd.readouterr().err == ""


def test_seed_call_form_with_the_inplace_api(tmp_path: Path, www: Path) -> None:
    """instantiate_inplace(fetchurl, name=, url=, sha256=) works as in the seed's Quick Start."""
    store_initialize(custom_store=str(tmp_path / "st"), custom_tmp=str(tmp_path / "tmp"))
    arc = www / "hello-2.10.tar.gz"
    tree = _make_archive(arc, "tar.gz")
    with serve_dir(str(www)) as srv:
        dref = instantiate_inplace(
            fetchurl, name="hello-src", url=f"{srv.url}/hello-2.10.tar.gz", sha256=_sha256(arc)
        )
        rref = realize_inplace(dref)
    assert dref.endswith("-hello-src")
    assert _tree(rref2path(rref)) == tree


def test_fetchlocal_by_path_and_by_environment_variable(
    S: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fetchlocal copies and unpacks a local archive named by path or by an env variable."""
    arc = tmp_path / "local.tar.xz"
    tree = _make_archive(arc, "tar.xz")
    h = _sha256(arc)
    r1 = realize1(instantiate(fetchlocal, str(arc), sha256=h, S=S))
    assert _tree(rref2path(r1, S)) == tree
    monkeypatch.setenv("PLX_TEST_ARCHIVE", str(arc))
    _, clo = instantiate(
        fetchlocal, envname="PLX_TEST_ARCHIVE", filename="local.tar.xz", sha256=h, S=S
    )
    assert _tree(rref2path(realize1(clo), S)) == tree
    monkeypatch.delenv("PLX_TEST_ARCHIVE")
    with pytest.raises(BuildError, match="environment variable PLX_TEST_ARCHIVE is not set"):
        realize1(
            instantiate(
                fetchlocal, envname="PLX_TEST_ARCHIVE", filename="other.tar.xz", sha256=h, S=S
            )
        )


def test_fetchlocal_hash_mismatch(S: StorageSettings, tmp_path: Path) -> None:
    """A local file with another hash is refused with both hashes and nothing stored."""
    f = tmp_path / "note.txt"
    f.write_text("hi")
    with pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchlocal, str(f), sha256="2" * 64, mode="as-is", S=S))
    assert isinstance(ei.value.__cause__, HashMismatchError)
    assert ei.value.__cause__.actual == _sha256(f)
    _nothing_stored(S)


def _fetch_then_unpack(url: str, sha256: str, r: object = None) -> object:
    src = fetchurl(url, sha256=sha256, mode="as-is", name="raw", r=r)  # type: ignore[arg-type]
    return unpackref([src, "pkg.zip"], name="tree", r=r)  # type: ignore[arg-type]


def test_unpack_stage_extracts_an_archive_of_another_stage(
    S: StorageSettings, tmp_path: Path
) -> None:
    """unpackref([dref, 'pkg.zip']) extracts a file kept as-is by a fetch stage."""
    arc = tmp_path / "pkg.zip"
    tree = _make_archive(arc, "zip")
    rref = realize1(instantiate(_fetch_then_unpack, arc.as_uri(), _sha256(arc), S=S))
    assert rref.endswith("-tree")
    assert _tree(rref2path(rref, S)) == tree


_CHILD = """
import sys, os
from pylightnix import mkSS, instantiate, realize1
from pylightnix.stages.fetch import fetchurl
S = mkSS(sys.argv[1])
url, sha, marker = sys.argv[2], sys.argv[3], sys.argv[4]
clo = instantiate(fetchurl, url=url, sha256=sha, S=S)
open(marker, "w").close()
print(realize1(clo))
"""


def _child(
    tmp_path: Path, S: StorageSettings, url: str, sha: str, marker: Path
) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), S.root, url, sha, str(marker)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_fetching_the_same_url_download_once(
    S: StorageSettings, tmp_path: Path, www: Path
) -> None:
    """While one process downloads, a second one waits and then reuses its realization."""
    arc = www / "same.tar.gz"
    tree = _make_archive(arc, "tar.gz")
    with serve_dir(str(www)) as srv:
        srv.release = threading.Event()
        url = f"{srv.url}/same.tar.gz"
        a = _child(tmp_path, S, url, _sha256(arc), tmp_path / "a.ready")
        assert srv.arrived.wait(60)
        b_marker = tmp_path / "b.ready"
        b = _child(tmp_path, S, url, _sha256(arc), b_marker)
        # b has instantiated and is entering realize (it blocks on a's build lock).
        while not b_marker.exists() and b.poll() is None:
            os.sched_yield()
        srv.release.set()
        out_a, _ = a.communicate(timeout=60)
        out_b, _ = b.communicate(timeout=60)
    assert (a.returncode, b.returncode) == (0, 0)
    assert out_a == out_b
    assert srv.requests == ["/same.tar.gz"]
    rref = out_a.strip()
    assert list(allrrefs(S)) == [rref]
    assert _tree(rref2path(rref, S)) == tree  # type: ignore[arg-type]


def test_two_processes_fetching_same_named_files_at_once_never_mix_bytes(
    S: StorageSettings, tmp_path: Path, www: Path
) -> None:
    """Two fetches of different 'data.tar.gz' files download at the same time, each intact."""
    for d in ("a", "b"):
        (www / d).mkdir()
        with tarfile.open(www / d / "data.tar.gz", "w:gz") as tf:
            data = (d * 1000).encode() + os.urandom(500_000)
            ti = tarfile.TarInfo(f"{d}.bin")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    with serve_dir(str(www)) as srv:
        srv.barrier = threading.Barrier(2)
        ps = [
            _child(
                tmp_path,
                S,
                f"{srv.url}/{d}/data.tar.gz",
                _sha256(www / d / "data.tar.gz"),
                tmp_path / f"{d}.ready",
            )
            for d in ("a", "b")
        ]
        outs = [p.communicate(timeout=60)[0].strip() for p in ps]
    assert [p.returncode for p in ps] == [0, 0]
    assert sorted(srv.requests) == ["/a/data.tar.gz", "/b/data.tar.gz"]
    for d, rref in zip(("a", "b"), outs, strict=True):
        with tarfile.open(www / d / "data.tar.gz") as tf:
            member = tf.extractfile(f"{d}.bin")
            assert member is not None
            want = member.read()
        assert (Path(rref2path(rref, S)) / f"{d}.bin").read_bytes() == want  # type: ignore[arg-type]


class _ShortHandler(BaseHTTPRequestHandler):
    """Promises 100,000 bytes, sends 10 and hangs up."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_connection_closed_mid_download_is_a_fetch_error(S: StorageSettings) -> None:
    """A server that closes the connection early gives a FetchError naming the URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ShortHandler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02})
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/short.tar.gz"
        with pytest.raises(BuildError) as ei:
            realize1(instantiate(fetchurl, url=url, sha256="1" * 64, S=S))
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()
    cause = ei.value.__cause__
    assert isinstance(cause, FetchError)
    assert cause.url == url
    assert str(cause) == f"download of {url} stopped after 10 of 100000 bytes: try again"
    _nothing_stored(S)


def test_slow_download_without_hook_logs_progress_lines_to_the_build_log(
    S: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past STDERR_AFTER seconds without a hook, progress lines land in the captured build log."""
    import pylightnix.stages.fetch as fetch_mod
    from pylightnix.realize.buildlog import rreflog

    monkeypatch.setattr(fetch_mod, "STDERR_AFTER", -1.0)
    arc = tmp_path / "p.tar"
    _make_archive(arc, "tar")
    rref = realize1(instantiate(fetchurl, url=arc.as_uri(), sha256=_sha256(arc), S=S))
    size = arc.stat().st_size / 2**20
    lines = rreflog(rref, S).splitlines()
    # One line at the first report (LOG_EVERY seconds have not passed since) and the final one.
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("fetch p: ")
    assert lines[-1].startswith(f"fetch p: {size:.1f} MiB / {size:.1f} MiB at ")


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_fetch_trusts_only_verified_certificates(
    S: StorageSettings, tmp_path: Path, www: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTPS an untrusted certificate is a FetchError; once trusted, the fetch succeeds."""
    arc = www / "s.tgz"
    tree = _make_archive(arc, "tgz")
    cert, key = _self_signed(tmp_path)
    with serve_dir(str(www), tls=(cert, key)) as srv:
        url = f"{srv.url}/s.tgz"
        assert url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(BuildError) as ei:
            realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), S=S))
        cause = ei.value.__cause__
        assert isinstance(cause, FetchError)
        assert str(cause).startswith(f"cannot download {url}: ")
        assert "CERTIFICATE_VERIFY_FAILED" in str(cause)
        _nothing_stored(S)
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        rref = realize1(instantiate(fetchurl, url=url, sha256=_sha256(arc), S=S))
    assert _tree(rref2path(rref, S)) == tree
    assert srv.requests == ["/s.tgz"]


class _TrickleHandler(BaseHTTPRequestHandler):
    """Announces 1000 bytes and sends one every 50 ms (at most 200: bounded); or, with
    the path /silent, sends the headers and then nothing until the test ends."""

    done: threading.Event

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        if self.path.startswith("/silent"):
            self.done.wait(timeout=30)
            return
        for _ in range(200):
            if self.done.wait(timeout=0.05):
                return
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return  # the client gave up

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 (ephemeral port); yield the base URL."""
    done = threading.Event()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (handler,), {"done": done}))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02})
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        done.set()
        srv.shutdown()
        srv.server_close()
        t.join()


def test_a_trickling_server_fails_the_download_after_the_stall_window(
    S: StorageSettings,
) -> None:
    """One byte per 50 ms against a 100 B/s minimum over 1 s fails in about 1 s, naming the rate."""
    with _serve(_TrickleHandler) as base:
        url = f"{base}/slow.bin"
        with pytest.raises(BuildError) as ei:
            realize1(
                instantiate(
                    fetchurl,
                    url=url,
                    sha256="1" * 64,
                    mode="as-is",
                    speed_limit=100,
                    speed_time=1.0,
                    S=S,
                )
            )
    cause = ei.value.__cause__
    assert isinstance(cause, FetchError)
    assert cause.url == url
    # (Without the rule, the server's 200 bytes would end in a short-read error.)
    assert 0 < cause.rate < 100  # type: ignore[attr-defined]
    assert re.fullmatch(
        rf"download of {re.escape(url)} stalled: \d+\.\d B/s over the last \d+\.\d s, below the "
        r"minimum of 100 B/s over 1 s: try again or use a mirror \(or relax the rule: "
        r"speed_limit=/speed_time= of fetchurl, \$PYLIGHTNIX_FETCH_SPEED_LIMIT/"
        r"\$PYLIGHTNIX_FETCH_SPEED_TIME; 0 turns it off\)",
        str(cause),
    )
    _nothing_stored(S)


def test_a_silent_server_fails_after_one_window_from_the_environment(
    S: StorageSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers then silence: with the rule set by environment, the read gives up after 1 s."""
    monkeypatch.setenv("PYLIGHTNIX_FETCH_SPEED_LIMIT", "10")
    monkeypatch.setenv("PYLIGHTNIX_FETCH_SPEED_TIME", "1")
    with _serve(_TrickleHandler) as base:
        url = f"{base}/silent.bin"
        with pytest.raises(BuildError) as ei:
            realize1(instantiate(fetchurl, url=url, sha256="1" * 64, mode="as-is", S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, FetchError)
    assert re.match(
        rf"download of {re.escape(url)} stalled: 0\.0 B/s over the last \d+\.\d s, ", str(cause)
    )
    _nothing_stored(S)


def test_the_stall_rule_does_not_change_the_dref(S: StorageSettings) -> None:
    """speed_limit= and speed_time= are settings of the build, not part of the config."""
    url = "http://127.0.0.1:9/x.tar"
    plain, _ = instantiate(fetchurl, url=url, sha256="1" * 64, S=S)
    tuned, _ = instantiate(fetchurl, url=url, sha256="1" * 64, speed_limit=0, speed_time=5, S=S)
    assert plain == tuned


def test_bad_stall_rule_values_are_option_errors(
    S: StorageSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A negative limit or a zero window is refused when the stage is made; so is a bad env."""
    with pytest.raises(OptionError) as ei:
        instantiate(fetchurl, url="http://127.0.0.1:9/x", sha256="1" * 64, speed_limit=-1, S=S)
    assert str(ei.value) == "speed_limit=-1: expected a number >= 0 (0: no rule)"
    with pytest.raises(OptionError, match=r"speed_time=0: expected a positive number of seconds"):
        stall_rule(speed_time=0)
    monkeypatch.setenv("PYLIGHTNIX_FETCH_SPEED_TIME", "soon")
    with pytest.raises(OptionError) as ei:
        stall_rule()
    assert str(ei.value) == (
        "$PYLIGHTNIX_FETCH_SPEED_TIME='soon': expected a positive number of seconds"
    )


class _NegativeLengthHandler(BaseHTTPRequestHandler):
    """Serves a fixed body with ``Content-Length: -1`` and closes the connection."""

    done: threading.Event
    body = b"the right bytes\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "-1")
        self.end_headers()
        self.wfile.write(self.body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_negative_content_length_is_treated_as_unknown(S: StorageSettings) -> None:
    """A correct download announced with Content-Length: -1 succeeds."""
    body = _NegativeLengthHandler.body
    with _serve(_NegativeLengthHandler) as base:
        rref = realize1(
            instantiate(
                fetchurl,
                url=f"{base}/f.txt",
                sha256=hashlib.sha256(body).hexdigest(),
                mode="as-is",
                S=S,
            )
        )
    with open(os.path.join(rref2path(rref, S), "f.txt"), "rb") as f:
        assert f.read() == body


def test_unpack_errors_name_the_users_file_not_the_private_copy(
    S: StorageSettings, tmp_path: Path
) -> None:
    """A corrupt archive fetched with fetchlocal is reported under the user's path."""
    arc = tmp_path / "broken.zip"
    arc.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchlocal, path=str(arc), sha256=_sha256(arc), S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, ArchiveError)
    assert cause.archive == str(arc)  # type: ignore[attr-defined]
    assert str(cause).startswith(f"archive {str(arc)!r} is corrupt or truncated")
    _nothing_stored(S)


def test_an_archive_over_the_unpack_limit_leaves_nothing_in_the_store(
    S: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive unpacking past $PYLIGHTNIX_UNPACK_MAX_SIZE fails naming it; nothing stays."""
    monkeypatch.setenv("PYLIGHTNIX_UNPACK_MAX_SIZE", "5")
    arc = tmp_path / "p.tar.gz"
    _make_archive(arc, "tar.gz")
    with pytest.raises(BuildError) as ei:
        realize1(instantiate(fetchlocal, path=str(arc), sha256=_sha256(arc), S=S))
    cause = ei.value.__cause__
    assert isinstance(cause, UnpackLimitError)
    assert str(cause).startswith(f"archive {str(arc)!r} unpacks to more than 5 B (max_size=5)")
    _nothing_stored(S)

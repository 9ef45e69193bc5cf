"""Tests of ui/files.py: request paths stay inside the realization; safe content types."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pylightnix import (
    Build,
    RequestError,
    RRef,
    StorageSettings,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
)
from pylightnix.store.query import rref2path
from pylightnix.ui.files import (
    ATTACHMENT,
    PREVIEW_BYTES,
    Preview,
    preview,
    resolve_inside,
    served_as,
    url_segments,
    utf8_prefix,
)
from pylightnix.ui.server import FILE_CSP
from tests.ui.conftest import Client, serve
from tests.ui.sweep import png

PNG = png(4, 3, lambda x, y: (x * 60, y * 80, 200))
BIG = ("é" * 40_000).encode()  # 80,000 bytes of two-byte characters


@dataclass(frozen=True)
class Files:
    """A store with one realization full of awkward files, and a secret outside the store."""

    S: StorageSettings
    rref: RRef
    secret: str


def _build(b: Build) -> None:
    out = build_outpath(b)
    secret = b.config["secret"]
    with open(os.path.join(out, "data.txt"), "w") as f:
        f.write("hello <script>alert(1)</script>\n")
    os.makedirs(os.path.join(out, "sub"))
    with open(os.path.join(out, "sub", "a b.txt"), "w") as f:
        f.write("spaced\n")
    with open(os.path.join(out, "pic.png"), "wb") as f:
        f.write(PNG)
    with open(os.path.join(out, "fake.png"), "w") as f:
        f.write("<html><script>alert(1)</script></html>")
    with open(os.path.join(out, "draw.svg"), "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    with open(os.path.join(out, "big.txt"), "wb") as f:
        f.write(BIG)
    with open(os.path.join(out, "bin.dat"), "wb") as f:
        f.write(bytes(range(256)))
    os.symlink("data.txt", os.path.join(out, "inner"))
    os.symlink(secret, os.path.join(out, "escape"))
    os.symlink("../..", os.path.join(out, "updir"))
    os.symlink("sub/../../..", os.path.join(out, "sneaky"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The realization of awkward files (built once per module)."""
    top = tmp_path_factory.mktemp("files")
    secret = os.path.join(top, "secret.txt")
    with open(secret, "w") as f:
        f.write("the secret\n")
    S = fsinit(mkSS(os.path.join(top, "plx")))
    clo = instantiate(
        lambda r: mkdrv(
            {"name": "files", "secret": secret}, match_only(), build_wrapper(_build), r
        ),
        S=S,
    )
    return Files(S, realize1(clo), secret)


@pytest.fixture(scope="module")
def fclient(files: Files) -> Iterator[Client]:
    """A web view of the awkward files' store."""
    with serve(files.S) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("../x", ".."),
        ("a/../../x", ".."),
        ("%2e%2e/x", ".."),
        ("a%2F..%2Fb", "a/../b"),
        ("/etc/passwd", ""),
        ("a//b", ""),
        ("./a", "."),
        ("a%5C..%5Cb", "a\\..\\b"),
        ("a%00b", "a\x00b"),
    ],
)
def test_url_segments_refuse_what_could_leave(path: str, segment: str) -> None:
    """Empty, dot, dot-dot, encoded slashes, backslashes and NUL are refused by name."""
    with pytest.raises(RequestError) as e:
        url_segments(path)
    assert e.value.status == 400  # type: ignore[attr-defined]
    assert str(e.value) == (
        f"refused path {path!r}: segment {segment!r} could leave the realization "
        "(name files by their plain relative path, as the files list shows them)"
    )


def test_resolve_inside_follows_links_that_stay_inside(files: Files) -> None:
    """A plain path, an encoded name and a link to a sibling file resolve inside."""
    base = os.path.realpath(rref2path(files.rref, files.S))
    assert resolve_inside(base, "data.txt") == os.path.join(base, "data.txt")
    assert resolve_inside(base, "sub/a%20b.txt") == os.path.join(base, "sub", "a b.txt")
    assert resolve_inside(base, "inner") == os.path.join(base, "data.txt")


@pytest.mark.parametrize("path", ["escape", "updir/config.json", "sneaky/FORMAT", "updir"])
def test_resolve_inside_refuses_links_out_of_the_realization(files: Files, path: str) -> None:
    """Symlinks pointing out of the realization (absolute or relative) are refused with 403."""
    base = rref2path(files.rref, files.S)
    with pytest.raises(RequestError) as e:
        resolve_inside(base, path)
    assert e.value.status == 403  # type: ignore[attr-defined]
    assert str(e.value) == (
        f"refused path {path!r}: it resolves outside the realization (a symlink "
        "pointing out of it is never followed)"
    )


def test_resolve_inside_refuses_the_reserved_folder_and_missing_files(files: Files) -> None:
    """The store's reserved records are 403; a missing file or a folder is 404."""
    base = rref2path(files.rref, files.S)
    with pytest.raises(RequestError) as e:
        resolve_inside(base, "__pylightnix__/context.json")
    assert (e.value.status, str(e.value)) == (  # type: ignore[attr-defined]
        403,
        "refused path '__pylightnix__/context.json': __pylightnix__ holds the store's own "
        "records (see the config, context and log on the realization's page)",
    )
    for p in ("nothing.txt", "sub"):
        with pytest.raises(RequestError) as e:
            resolve_inside(base, p)
        assert (e.value.status, str(e.value)) == (404, f"no file {p!r} in this realization")  # type: ignore[attr-defined]


def test_served_as_allows_only_real_raster_images_inline(files: Files) -> None:
    """A PNG with PNG bytes is inline image/png; a fake PNG, SVG and text are attachments."""
    base = rref2path(files.rref, files.S)
    got = {
        n: served_as(os.path.join(base, n))
        for n in ("pic.png", "fake.png", "draw.svg", "data.txt", "bin.dat")
    }
    assert {n: (s.content_type, s.attachment) for n, s in got.items()} == {
        "pic.png": ("image/png", False),
        "fake.png": (ATTACHMENT, True),
        "draw.svg": (ATTACHMENT, True),
        "data.txt": (ATTACHMENT, True),
        "bin.dat": (ATTACHMENT, True),
    }
    assert served_as(os.path.join(base, "pic.png"), download=True).attachment is True


def test_preview_of_text_image_binary_and_long_text(files: Files) -> None:
    """Text is shown, an image is marked, bytes are binary, long text is cut at a character."""
    base = rref2path(files.rref, files.S)
    assert preview(os.path.join(base, "data.txt")) == Preview(
        "text", 32, "hello <script>alert(1)</script>\n", False
    )
    assert preview(os.path.join(base, "pic.png")) == Preview("image", len(PNG))
    assert preview(os.path.join(base, "bin.dat")) == Preview("binary", 256)
    big = preview(os.path.join(base, "big.txt"))
    assert (big.kind, big.size, big.truncated) == ("text", len(BIG), True)
    assert big.text == "é" * (PREVIEW_BYTES // 2)


def test_utf8_prefix_cuts_before_an_incomplete_character() -> None:
    """Cut multi-byte characters are left out whole; complete ones are kept."""
    euro = "€".encode()  # three bytes
    assert utf8_prefix(b"ab" + euro[:1]) == 2
    assert utf8_prefix(b"ab" + euro[:2]) == 2
    assert utf8_prefix(b"ab" + euro) == 5
    assert utf8_prefix("😀".encode()[:3]) == 0
    assert utf8_prefix(b"") == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../../FORMAT", 400),
        ("..%2F..%2FFORMAT", 400),
        ("%2e%2e/%2e%2e/FORMAT", 400),
        ("/etc/passwd", 400),
        ("%2Fetc%2Fpasswd", 400),
        ("escape", 403),
        ("updir/config.json", 403),
        ("sneaky/FORMAT", 403),
        ("__pylightnix__/context.json", 403),
        ("__pylightnix__%2Fcontext.json", 400),
        ("nothing", 404),
    ],
)
def test_raw_traversal_attempts_over_http(
    fclient: Client, files: Files, path: str, status: int
) -> None:
    """No request path reads outside the realization: each attempt gets its error, never bytes."""
    for prefix in ("/raw", "/api/rref"):
        url = (
            f"{prefix}/{files.rref}/{path}"
            if prefix == "/raw"
            else f"{prefix}/{files.rref}/preview/{path}"
        )
        a = fclient.get(url)
        assert a.status == status, url
        assert b"the secret" not in a.body
        assert b"pylightnix store-v2" not in a.body


def test_raw_headers_by_kind(fclient: Client, files: Files) -> None:
    """Images inline as image/png; everything else an octet-stream attachment; all nosniff."""
    img = fclient.get(f"/raw/{files.rref}/pic.png")
    assert (img.status, img.body) == (200, PNG)
    assert img.headers["content-type"] == "image/png"
    assert img.headers["content-disposition"] == 'inline; filename="pic.png"'
    assert img.headers["x-content-type-options"] == "nosniff"
    assert img.headers["content-security-policy"] == FILE_CSP
    for name in ("fake.png", "draw.svg", "data.txt"):
        a = fclient.get(f"/raw/{files.rref}/{name}")
        assert a.status == 200
        assert a.headers["content-type"] == ATTACHMENT
        assert a.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert a.headers["x-content-type-options"] == "nosniff"
    dl = fclient.get(f"/raw/{files.rref}/pic.png?download=1")
    assert dl.headers["content-disposition"] == 'attachment; filename="pic.png"'
    spaced = fclient.get(f"/raw/{files.rref}/sub/a%20b.txt")
    assert (spaced.status, spaced.body) == (200, b"spaced\n")
    inner = fclient.get(f"/raw/{files.rref}/inner")
    assert (inner.status, inner.headers["content-disposition"]) == (
        200,
        'attachment; filename="data.txt"',
    )


def test_preview_api_returns_text_as_data(fclient: Client, files: Files) -> None:
    """The preview API hands text to the page as JSON data (the page inserts it as text)."""
    a = fclient.get(f"/api/rref/{files.rref}/preview/data.txt")
    assert a.json() == {
        "rref": files.rref,
        "path": "data.txt",
        "limit": PREVIEW_BYTES,
        "kind": "text",
        "size": 32,
        "text": "hello <script>alert(1)</script>\n",
        "truncated": False,
    }

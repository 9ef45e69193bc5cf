"""Files of a realization as the web view serves them: inside the realization, or refused.

A request names a file by URL path segments. Each segment is decoded once;
a segment that is empty, ``.``, ``..``, holds a ``/``, a backslash or a NUL
byte, or names the store's reserved folder at the top, is refused before the
filesystem is asked. The joined path is then resolved (symlinks followed)
and must still lie inside the realization folder (itself resolved), the same
rule as ``catref``: a link inside a realization that points out of it is
refused, one that stays inside is followed.

Served bytes get a content type that cannot run script in the page: an
allow-listed raster image type (checked against the file's magic bytes), and
everything else ``application/octet-stream`` as an attachment.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from urllib.parse import unquote

from pylightnix.errors import RequestError
from pylightnix.store.layout import RESERVED

PREVIEW_BYTES = 64 * 1024
"""How much of a text file a preview shows."""

IMAGE_TYPES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".gif": ("image/gif", (b"GIF87a", b"GIF89a")),
    ".webp": ("image/webp", (b"RIFF",)),
}
"""Image types shown inline, by file extension, with the magic bytes that must start the file.

SVG is left out on purpose: it is a document that can carry script."""

ATTACHMENT = "application/octet-stream"


def url_segments(path: str) -> list[str]:
    """The decoded segments of a relative URL path, each checked to stay where it is.

    >>> url_segments("sub/a%20b.txt")
    ['sub', 'a b.txt']

    Raises:
        RequestError: (status 400) a segment is empty, ``.``, ``..``, or holds a
            ``/``, a backslash or a NUL byte once decoded.
    """
    out: list[str] = []
    for raw in path.split("/"):
        seg = unquote(raw, errors="strict")
        if seg in ("", ".", "..") or any(c in seg for c in "/\\\x00"):
            raise RequestError(
                f"refused path {path!r}: segment {seg!r} could leave the realization "
                "(name files by their plain relative path, as the files list shows them)",
                status=400,
            )
        out.append(seg)
    return out


def resolve_inside(base: str, path: str) -> str:
    """The real path of the file ``path`` (a relative URL path) of the realization ``base``.

    Raises:
        RequestError: the path is malformed (400), leaves the realization,
            also through a symlink, or names its reserved folder (403), or is
            not a regular file there (404).
    """
    segs = url_segments(path)
    if segs[0] == RESERVED:
        raise RequestError(
            f"refused path {path!r}: {RESERVED} holds the store's own records "
            "(see the config, context and log on the realization's page)",
            status=403,
        )
    real_base = os.path.realpath(base)
    real = os.path.realpath(os.path.join(real_base, *segs))
    if os.path.commonpath([real_base, real]) != real_base or real == real_base:
        raise RequestError(
            f"refused path {path!r}: it resolves outside the realization (a symlink "
            "pointing out of it is never followed)",
            status=403,
        )
    rel = os.path.relpath(real, real_base)
    if rel.split(os.sep)[0] == RESERVED:
        raise RequestError(
            f"refused path {path!r}: it resolves into {RESERVED}, the store's own records",
            status=403,
        )
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise RequestError(f"no file {path!r} in this realization", status=404)
    return real


@dataclass(frozen=True)
class Served:
    """How a file is sent: its content type and whether the browser must download it."""

    content_type: str
    attachment: bool


def _image_type(path: str, head: bytes) -> str | None:
    entry = IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
    if entry is None:
        return None
    ctype, magics = entry
    if not any(head.startswith(m) for m in magics):
        return None
    if ctype == "image/webp" and head[8:12] != b"WEBP":
        return None
    return ctype


def served_as(path: str, *, download: bool = False) -> Served:
    """The content type of a file: an allow-listed image inline, anything else an attachment.

    Args:
        path: the real path of the file.
        download: the user asked to download it (then always an attachment).
    """
    with open(path, "rb") as f:
        head = f.read(16)
    ctype = _image_type(path, head)
    if ctype is None:
        return Served(ATTACHMENT, True)
    return Served(ctype, download)


@dataclass(frozen=True)
class Preview:
    """What the files page shows of one file.

    Attributes:
        kind: ``"text"`` (UTF-8, shown), ``"image"`` (shown from ``/raw``) or
            ``"binary"`` (download only).
        size: bytes of the file.
        text: the first :data:`PREVIEW_BYTES` decoded (text only).
        truncated: the file is longer than the preview.
    """

    kind: str
    size: int
    text: str = ""
    truncated: bool = False


def utf8_prefix(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that ends on a UTF-8 character boundary.

    >>> utf8_prefix("ab\\u00e9".encode()[:-1])
    2
    >>> utf8_prefix(b"abc")
    3
    """
    for i in range(len(data) - 1, max(-1, len(data) - 5), -1):
        b = data[i]
        if b & 0xC0 != 0x80:  # the last byte that starts a character
            need = 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(data) if len(data) - i >= need else i
    return len(data)


def preview(path: str) -> Preview:
    """A preview of the file at the real path ``path`` (see :class:`Preview`)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read(PREVIEW_BYTES)
    if _image_type(path, data[:16]) is not None:
        return Preview("image", size)
    truncated = size > len(data)
    cut = utf8_prefix(data) if truncated else len(data)
    try:
        text = data[:cut].decode("utf-8")
    except UnicodeDecodeError:
        return Preview("binary", size)
    if "\x00" in text:
        return Preview("binary", size)
    return Preview("text", size, text, truncated)

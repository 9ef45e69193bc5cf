"""The original's ``fetchurl2`` and ``unpack`` stages (``pylightnix.stages.fetch2``),
as spellings of :func:`pylightnix.fetchurl`, :func:`pylightnix.fetchlocal` and
:func:`pylightnix.unpackref`."""

from __future__ import annotations

import os
from typing import Any

from pylightnix.config import selfref
from pylightnix.errors import ConfigError
from pylightnix.hashing import hash_file
from pylightnix.realize.registry import Registry, registry_first
from pylightnix.stages.fetch import fetchlocal, fetchurl, unpackref, url_filename
from pylightnix.types import DRef, RefPath


@registry_first
def fetchurl2(
    url: str,
    sha256: str | None = None,
    sha1: str | None = None,
    name: str | None = None,
    filename: str | None = None,
    force_download: bool = False,
    r: Registry | None = None,
    **kwargs: Any,
) -> DRef:
    """Download ``url`` as-is, checked against its hash; the file is promised as ``out``.

    Without a hash, ``url`` may be an existing local file: its sha256 is taken now.
    (``force_download`` is accepted and has no effect: downloads never share folders here.)
    """
    if sha256 is None and sha1 is None and os.path.isfile(url):
        fname = filename or os.path.basename(url)
        return fetchlocal(
            url,
            sha256=hash_file(url).hex(),
            mode="as-is",
            name=name or "fetchurl2",
            filename=fname,
            r=r,
            **{"out": [selfref, fname], **kwargs},
        )
    fname = filename or url_filename(url)
    return fetchurl(
        url,
        sha256=sha256,
        sha1=sha1,
        mode="as-is",
        name=name or "fetchurl2",
        filename=fname,
        r=r,
        **{"out": [selfref, fname], **kwargs},
    )


@registry_first
def unpack(
    path: str | None = None,
    refpath: RefPath | None = None,
    name: str | None = None,
    sha256: str | None = None,
    sha1: str | None = None,
    aunpack_args: list[str] | None = None,
    r: Registry | None = None,
    **kwargs: Any,
) -> DRef:
    """Unpack an archive: a file of another stage (``refpath``) or a local file (``path``).

    Raises:
        ConfigError: neither or both sources, ``aunpack_args`` or extra keys
            (there is no external unpacker to pass them to).
    """
    if (path is None) == (refpath is None):
        raise ConfigError("unpack needs exactly one of path= or refpath=", key_path=("path",))
    if aunpack_args or kwargs:
        extra = sorted(kwargs) + (["aunpack_args"] if aunpack_args else [])
        raise ConfigError(
            f"unpack: {extra[0]!r} is not supported (archives are unpacked in Python, "
            "safely); drop it",
            key_path=(extra[0],),
        )
    if path is not None:
        h = sha256 if sha256 is not None else (None if sha1 else hash_file(path).hex())
        return fetchlocal(path, sha256=h, sha1=sha1, mode="unpack", name=name or "unpack", r=r)
    return unpackref(list(refpath or []), name=name or "unpack", sha256=sha256, r=r)

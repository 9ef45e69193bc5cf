"""The original's fetchurl2 and unpack stages (legacy/fetch2.py)."""

from __future__ import annotations

import hashlib
import os
import tarfile
from typing import Any

import pytest

from pylightnix import (
    ConfigError,
    StorageSettings,
    drefcfg,
    instantiate,
    mklens,
    realize1,
    rref2path,
)
from pylightnix.legacy.fetch2 import fetchurl2, unpack
from tests.serve import serve_dir


def test_fetchurl2_from_local_file_and_url(tmp_path: Any, S: StorageSettings) -> None:
    """A local file is hashed now; a URL is checked against its hash; both promise 'out'."""
    src = tmp_path / "data.bin"
    src.write_bytes(b"payload")
    h = hashlib.sha256(b"payload").hexdigest()
    r = realize1(instantiate(fetchurl2, str(src), S=S))
    assert mklens(r, S).out.contents == "payload"
    cfg = drefcfg(mklens(r, S).dref, S)
    assert cfg["name"] == "fetchurl2" and cfg["sha256"] == h
    with serve_dir(str(tmp_path)) as srv:
        r2 = realize1(instantiate(fetchurl2, f"{srv.url}/data.bin", sha256=h, name="dl", S=S))
    assert mklens(r2, S).out.contents == "payload"


def test_unpack_path_and_refpath(tmp_path: Any, S: StorageSettings) -> None:
    """unpack(path=...) and unpack(refpath=...) extract an archive into a realization."""
    (tmp_path / "f.txt").write_text("inside")
    arch = str(tmp_path / "a.tar.gz")
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(str(tmp_path / "f.txt"), arcname="f.txt")
    r = realize1(instantiate(unpack, path=arch, S=S))
    with open(os.path.join(rref2path(r, S), "f.txt")) as f:
        assert f.read() == "inside"

    def both(r: Any = None) -> Any:
        raw = fetchurl2(arch, r=r)
        return unpack(refpath=[raw, "a.tar.gz"], name="un", r=r)

    r2 = realize1(instantiate(both, S=S))
    with open(os.path.join(rref2path(r2, S), "f.txt")) as f:
        assert f.read() == "inside"


def test_unpack_refuses_what_it_cannot_do(S: StorageSettings) -> None:
    """Neither or both sources, and aunpack arguments, are clear errors."""
    with pytest.raises(ConfigError) as ei:
        instantiate(unpack, S=S)
    assert str(ei.value) == "unpack needs exactly one of path= or refpath="
    with pytest.raises(ConfigError) as ei:
        instantiate(unpack, path="/x.tgz", aunpack_args=["-q"], S=S)
    assert str(ei.value) == (
        "unpack: 'aunpack_args' is not supported (archives are unpacked in Python, safely); drop it"
    )

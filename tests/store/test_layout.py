"""Tests of store/layout.py: paths of objects, store checks and version refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylightnix import StorageSettings, fsinit, instantiate, mkSS
from pylightnix.errors import StoreError, StoreVersionError
from pylightnix.store.index import index_path
from pylightnix.store.layout import (
    _CHECKED,
    RESERVED,
    check_store,
    dref2path,
    init_store,
    rref2path_,
)
from pylightnix.types import DRef, RRef

H = "0123456789abcdef" * 2
R = "f" * 32


def test_object_paths(S: StorageSettings) -> None:
    """Derivations, realizations and index files live where docs/store-format.md says."""
    d = DRef(f"dref:{H}-name")
    assert dref2path(d, S) == os.path.join(S.storage, f"{H}-name")
    assert rref2path_(RRef(f"rref:{R}-{H}-name"), S) == os.path.join(S.storage, f"{H}-name", R)
    assert index_path(S, d) == os.path.join(S.storage, f"{H}-name", "index.tsv")
    assert RESERVED == "__pylightnix__"


def test_missing_store_is_refused(tmp_path: Path) -> None:
    """A folder that does not exist is no store: the error says how to create one."""
    S = mkSS(str(tmp_path / "nothing"))
    with pytest.raises(StoreError) as ei:
        check_store(S)
    assert str(ei.value) == (
        f"no pylightnix store at {S.storage!r}: initialize it with "
        "store_initialize() / fsinit(S), or `pylightnix init`"
    )
    with pytest.raises(StoreError):
        instantiate(lambda: None, S=S)


def test_non_store_folder_is_refused(tmp_path: Path) -> None:
    """An existing folder without a FORMAT file is refused, and init does not adopt it."""
    S = mkSS(str(tmp_path / "r"))
    os.makedirs(S.storage)
    (Path(S.storage) / "my-data.txt").write_text("precious")
    with pytest.raises(StoreError) as ei:
        check_store(S)
    assert str(ei.value) == (
        f"{S.storage!r} exists but is not a pylightnix store (no FORMAT file): "
        "point PYLIGHTNIX_ROOT elsewhere or initialize an empty folder"
    )
    with pytest.raises(StoreError) as ei2:
        fsinit(S)
    assert str(ei2.value) == (
        f"{S.storage!r} is not empty and is not a pylightnix store-v2 store: "
        "choose an empty or new folder"
    )
    assert os.listdir(S.storage) == ["my-data.txt"]


def test_empty_folder_can_become_a_store(tmp_path: Path) -> None:
    """An existing empty folder is initialized in place."""
    S = mkSS(str(tmp_path / "r"))
    os.makedirs(S.storage)
    init_store(S)
    check_store(S)


@pytest.mark.parametrize("text", ["pylightnix store-v0\n", "pylightnix store-v2", "garbage"])
def test_other_format_versions_are_refused(tmp_path: Path, text: str) -> None:
    """A FORMAT of another text raises StoreVersionError naming both versions."""
    S = fsinit(mkSS(str(tmp_path / "r")))
    fmt = os.path.join(S.storage, "FORMAT")
    os.chmod(fmt, 0o644)
    with open(fmt, "w") as f:
        f.write(text)
    _CHECKED.discard(S.storage)
    with pytest.raises(StoreVersionError) as ei:
        instantiate(lambda: None, S=S)
    assert str(ei.value) == (
        f"store at {S.storage!r} has format {text.strip()!r}, but this pylightnix "
        "reads only 'pylightnix store-v2': use the matching pylightnix version "
        "or a new store root"
    )
    e = ei.value
    assert (e.expected, e.actual, e.path) == (  # type: ignore[attr-defined]
        "pylightnix store-v2",
        text.strip(),
        S.storage,
    )
    with pytest.raises(StoreVersionError):
        fsinit(S)
    with open(fmt) as f:
        assert f.read() == text

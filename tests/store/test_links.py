"""Tests of result links: relative symlinks to store objects, registered as GC roots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pylightnix import StorageSettings, instantiate, realize1, rref2path
from pylightnix.errors import RefError, StoreError
from pylightnix.refs import mkrref, parse_rref
from pylightnix.stages.trivial import mkfile
from pylightnix.store.links import linkdref, linkrref, linkrrefs, unlinkrref
from pylightnix.store.roots import list_roots
from pylightnix.types import HashPart


def _rref(S: StorageSettings, name: str = "hello", text: str = "hi") -> str:
    return realize1(instantiate(mkfile, name, text, "f.txt", S=S))


def test_linkrref_makes_a_relative_link_registered_as_a_root(
    S: StorageSettings, tmp_path: Path
) -> None:
    """The link is relative, resolves to the realization, and list_roots resolves it back."""
    rref = _rref(S)
    work = tmp_path / "work"
    work.mkdir()
    link = linkrref(rref, str(work), S=S)  # type: ignore[arg-type]
    assert link == os.path.join(str(work), "result-hello")
    assert not os.path.isabs(os.readlink(link))
    assert os.path.realpath(link) == os.path.realpath(rref2path(rref, S))  # type: ignore[arg-type]
    assert (Path(link) / "f.txt").read_text() == "hi"
    roots = list_roots(S)
    assert [(str(r.link), r.rref) for r in roots] == [(os.path.abspath(link), rref)]


def test_link_survives_moving_store_and_link_together(S: StorageSettings, tmp_path: Path) -> None:
    """A relative link inside the store's root keeps working when the whole tree is moved."""
    rref = _rref(S)
    link = linkrref(rref, S.root, "result", S=S)  # type: ignore[arg-type]
    moved = tmp_path / "moved"
    shutil.move(S.root, moved)
    assert (moved / "result" / "f.txt").read_text() == "hi"
    assert os.path.basename(link) == "result"


def test_linkrref_replaces_its_own_link_atomically_but_never_a_file(
    S: StorageSettings, tmp_path: Path
) -> None:
    """Relinking moves the link to the new realization; a real file of that name is refused."""
    a = _rref(S, "x", "a")
    b = _rref(S, "x", "b")
    link = linkrref(a, str(tmp_path), S=S)  # type: ignore[arg-type]
    assert linkrref(b, str(tmp_path), S=S) == link  # type: ignore[arg-type]
    assert (Path(link) / "f.txt").read_text() == "b"
    assert [r.rref for r in list_roots(S)] == [b]
    assert sorted(os.listdir(tmp_path)) == sorted(["plx", "result-x"])
    (tmp_path / "result-keep").write_text("user data")
    with pytest.raises(StoreError, match="exists and is not a symlink"):
        linkrref(a, str(tmp_path), "result-keep", S=S)  # type: ignore[arg-type]
    assert (tmp_path / "result-keep").read_text() == "user data"
    with pytest.raises(StoreError, match="does not exist"):
        linkrref(a, str(tmp_path / "nope"), S=S)  # type: ignore[arg-type]


def test_linkrref_of_a_missing_rref_fails(S: StorageSettings, tmp_path: Path) -> None:
    """An RRef that is not stored gives RefError and no link."""
    rref = _rref(S)
    rhash, dhash, name = parse_rref(rref)
    bogus = mkrref(HashPart("f" * 32 if rhash != "f" * 32 else "e" * 32), dhash, name)
    with pytest.raises(RefError):
        linkrref(bogus, str(tmp_path), S=S)  # type: ignore[arg-type]
    assert not os.path.lexists(tmp_path / "result-hello")


def test_linkdref_links_the_derivation_and_is_not_a_root(
    S: StorageSettings, tmp_path: Path
) -> None:
    """linkdref points at the derivation folder, default name result-<name>-drv, no root."""
    dref, clo = instantiate(mkfile, "hello", "hi", "f.txt", S=S)
    rref = realize1(clo)
    link = linkdref(dref, str(tmp_path), S=S)
    assert os.path.basename(link) == "result-hello-drv"
    assert (Path(link) / "config.json").is_file()
    assert os.path.realpath(link) == os.path.realpath(os.path.dirname(rref2path(rref, S)))
    assert list_roots(S) == []


def test_linkrrefs_names_duplicates_by_position(S: StorageSettings, tmp_path: Path) -> None:
    """Distinct names get result-<name>; shared names get -1, -2 in the given order."""
    a = _rref(S, "x", "a")
    b = _rref(S, "x", "b")
    c = _rref(S, "y", "c")
    links = linkrrefs([a, b, c], str(tmp_path), S=S)  # type: ignore[list-item]
    assert [os.path.basename(p) for p in links] == ["result-x-1", "result-x-2", "result-y"]
    assert [(Path(p) / "f.txt").read_text() for p in links] == ["a", "b", "c"]
    assert sorted(r.rref for r in list_roots(S)) == sorted([a, b, c])  # type: ignore[type-var]


def test_unlinkrref_removes_link_and_root(S: StorageSettings, tmp_path: Path) -> None:
    """unlinkrref deletes the link and its root entry; a non-link is refused."""
    link = linkrref(_rref(S), str(tmp_path), S=S)  # type: ignore[arg-type]
    unlinkrref(link, S)
    assert (os.path.lexists(link), list_roots(S)) == (False, [])
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a result link"):
        unlinkrref(str(tmp_path / "file"), S)

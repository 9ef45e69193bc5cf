"""Tests of store/fsops.py: atomic writes, read-only trees, removal, race-safe renames."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pylightnix.store.fsops import (
    atomic_write,
    make_readonly,
    make_writable,
    mkdtemp_in,
    remove_tree,
    remove_via_trash,
    rename_noreplace,
    unique_suffix,
)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "f").write_text("f")
    (root / "sub" / "x").write_text("x")
    os.chmod(root / "sub" / "x", 0o775)
    os.symlink("f", root / "link")
    return root


def test_atomic_write_creates_the_file_with_mode_and_no_leftovers(tmp_path: Path) -> None:
    """atomic_write leaves exactly the target file, with the requested mode."""
    p = tmp_path / "a.json"
    atomic_write(str(p), b"data", mode=0o444, durable=True)
    assert p.read_bytes() == b"data"
    assert _mode(p) == 0o444
    atomic_write(str(p), b"new", mode=0o640)
    assert (p.read_bytes(), _mode(p)) == (b"new", 0o640)
    assert os.listdir(tmp_path) == ["a.json"]


def test_make_readonly_removes_write_bits_and_keeps_exec_bits(tmp_path: Path) -> None:
    """Files and folders lose every write bit; exec bits stay; symlinks are not followed."""
    t = _tree(tmp_path / "t")
    os.chmod(t / "f", 0o666)
    make_readonly(str(t))
    assert _mode(t / "f") == 0o444
    assert _mode(t / "sub" / "x") == 0o555
    assert _mode(t / "sub") == 0o555
    assert _mode(t) == 0o555
    assert os.path.islink(t / "link")
    make_writable(str(t))
    assert (_mode(t / "f"), _mode(t / "sub" / "x"), _mode(t / "sub"), _mode(t)) == (
        0o644,
        0o755,
        0o755,
        0o755,
    )


def test_make_readonly_skip_top_leaves_the_top_folder_writable(tmp_path: Path) -> None:
    """skip_top keeps the top folder's mode (so it can still be renamed)."""
    t = _tree(tmp_path / "t")
    make_readonly(str(t), skip_top=True, durable=True)
    assert _mode(t) == 0o755
    assert _mode(t / "sub") == 0o555


def test_remove_tree_removes_read_only_trees_files_and_links(tmp_path: Path) -> None:
    """remove_tree deletes a read-only tree, a file, a symlink (not its target), or nothing."""
    t = _tree(tmp_path / "t")
    make_readonly(str(t))
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, tmp_path / "l")
    remove_tree(str(tmp_path / "l"))
    assert target.is_dir()
    remove_tree(str(t))
    remove_tree(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    remove_tree(str(tmp_path / "file"))
    assert os.listdir(tmp_path) == ["target"]


def test_remove_via_trash_renames_then_deletes(tmp_path: Path) -> None:
    """The tree disappears from its place at once; the trash folder ends empty."""
    t = _tree(tmp_path / "store" / "obj")
    make_readonly(str(t))
    os.chmod(tmp_path / "store", 0o555)
    remove_via_trash(str(t), str(tmp_path / "trash"))
    assert os.listdir(tmp_path / "store") == []
    assert os.listdir(tmp_path / "trash") == []
    remove_via_trash(str(t), str(tmp_path / "trash"))  # already gone: fine


def test_rename_noreplace_moves_once(tmp_path: Path) -> None:
    """The first rename to a new name wins; a second onto the non-empty folder reports False."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "x").write_text("1")
    b.mkdir()
    (b / "x").write_text("2")
    assert rename_noreplace(str(a), str(tmp_path / "dst")) is True
    assert rename_noreplace(str(b), str(tmp_path / "dst")) is False
    assert (tmp_path / "dst" / "x").read_text() == "1"
    assert (b / "x").read_text() == "2"


def test_mkdtemp_in_creates_parent_and_unique_folders(tmp_path: Path) -> None:
    """mkdtemp_in makes missing parents and a fresh private folder each call."""
    a = mkdtemp_in(str(tmp_path / "p" / "q"), "build")
    b = mkdtemp_in(str(tmp_path / "p" / "q"), "build")
    assert a != b
    assert os.path.basename(a).startswith(f"build-{os.getpid()}-")
    assert _mode(Path(a)) == 0o700
    assert unique_suffix() != unique_suffix()

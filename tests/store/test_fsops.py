"""Tests of store/fsops.py: atomic writes, read-only trees, removal, race-safe renames."""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylightnix import (
    StoreError,
    alldrefs,
    allrrefs,
    build_outpath,
    build_wrapper,
    fsinit,
    gc,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    verify,
)
from pylightnix.refs import dref_dirname
from pylightnix.store import fsops
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
from pylightnix.store.temproots import release_temproots
from pylightnix.types import DRef


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


# Faults of the store and its environment (issue 9, bug 3.5): each is a StoreError naming
# the stage, the path and what to do, never a raw OSError.


def _out(b: Any) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def _stage(r: Any = None) -> DRef:
    return mkdrv({"name": "faulty"}, match_only(), build_wrapper(_out), r)


_GARBAGE = (
    "a file stands where the store keeps a folder (garbage in the store): move that file "
    "away, then retry"
)


def test_a_file_where_the_locks_folder_belongs_is_a_store_error(tmp_path: Path) -> None:
    """A file named .locks makes instantiate fail with a StoreError naming the GC lock path."""
    S = fsinit(mkSS(str(tmp_path / "plx")))
    locks = os.path.join(S.storage, ".locks")
    remove_tree(locks)
    open(locks, "w").close()
    with pytest.raises(StoreError) as ei:
        instantiate(_stage, S=S)
    path = os.path.join(locks, "gc.lock")
    assert str(ei.value) == f"opening the GC lock failed at {path!r}: {_GARBAGE}"
    assert ei.value.path == path


def test_a_file_where_the_temporary_folder_belongs_is_a_store_error(tmp_path: Path) -> None:
    """A file named tmp makes instantiate fail with a StoreError naming that file."""
    S = fsinit(mkSS(str(tmp_path / "plx")))
    os.rmdir(S.tmpdir)
    open(S.tmpdir, "w").close()
    with pytest.raises(StoreError) as ei:
        instantiate(_stage, S=S)
    assert str(ei.value) == (f"creating a temporary folder failed at {S.tmpdir!r}: {_GARBAGE}")


def test_a_folder_where_the_index_file_belongs_is_a_store_error(tmp_path: Path) -> None:
    """A folder named index.tsv in a derivation makes realize fail naming that path."""
    S = fsinit(mkSS(str(tmp_path / "plx")))
    clo = instantiate(_stage, S=S)
    idx = os.path.join(S.storage, dref_dirname(clo[0]), "index.tsv")
    os.mkdir(idx)
    with pytest.raises(StoreError) as ei:
        realize1(clo)
    assert str(ei.value) == (
        f"moving a realization of {clo[0]} into the store failed at {idx!r}: a folder stands "
        "where the store keeps a file (garbage in the store): move that folder away, then retry"
    )
    assert os.listdir(idx) == []
    assert [n for n in os.listdir(os.path.dirname(idx)) if n != "index.tsv"] == ["config.json"]


def test_a_temporary_folder_on_another_filesystem_is_a_store_error(tmp_path: Path) -> None:
    """EXDEV at instantiate names the stage and says to keep tmp on the store's filesystem."""
    if os.stat("/dev/shm").st_dev == os.stat(str(tmp_path)).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the test's folder")
    other = tempfile.mkdtemp(dir="/dev/shm", prefix="plx-exdev-")
    try:
        S = fsinit(mkSS(str(tmp_path / "plx"), tmpdir=other))
        with pytest.raises(StoreError) as ei:
            instantiate(_stage, S=S)
        msg = str(ei.value)
        assert msg.startswith("writing the derivation dref:")
        assert msg.endswith(
            "the temporary folder is on another filesystem than the store, so objects cannot "
            "be moved in atomically: keep the temporary folder (tmpdir, $PYLIGHTNIX_TMP) on the "
            "store's filesystem, e.g. the default <root>/tmp"
        )
        assert list(alldrefs(S)) == []
    finally:
        remove_tree(other)


@contextlib.contextmanager
def _mounted(args: list[str], target: str) -> Iterator[None]:
    os.makedirs(target, exist_ok=True)
    p = subprocess.run(["mount", *args, target], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        pytest.skip(f"cannot mount here: {p.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=True)


def _fill(b: Any) -> None:
    """Realizer: write the output, then fill the filesystem so nothing more fits."""
    _out(b)
    fd = os.open(os.path.join(build_outpath(b), "..", "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


def test_no_space_while_writing_reserved_files_names_that_stage(tmp_path: Path) -> None:
    """ENOSPC after the realizer's output is written is a StoreError naming the reserved files."""
    mnt = str(tmp_path / "small")
    with _mounted(["-t", "tmpfs", "-o", "size=256k", "tmpfs"], mnt):
        S = fsinit(mkSS(os.path.join(mnt, "plx")))
        clo = instantiate(
            lambda r=None: mkdrv({"name": "full"}, match_only(), build_wrapper(_fill), r), S=S
        )
        with pytest.raises(StoreError) as ei:
            realize1(clo)
        msg = str(ei.value)
        assert msg.startswith(
            f"writing the reserved files (__pylightnix__) of an output of {clo[0]} failed at "
        )
        assert msg.endswith(
            "no space left on the device: free space on the store's filesystem, then retry"
        )
        assert list(allrrefs(S)) == []


def test_a_read_only_mounted_store_serves_queries_verify_and_cached_realizes(
    tmp_path: Path,
) -> None:
    """Through a read-only bind mount: cached realize, verify, queries and a gc dry run work;
    a build is a StoreError saying the store is read-only."""
    S0 = fsinit(mkSS(str(tmp_path / "plx")))
    rref = realize1(instantiate(_stage, S=S0))
    release_temproots(S0)
    mnt = str(tmp_path / "ro")
    with _mounted(["--bind", "-o", "ro", str(tmp_path / "plx")], mnt):
        S = mkSS(mnt)
        assert realize1(instantiate(_stage, S=S)) == rref
        assert verify(S=S).ok
        assert list(allrrefs(S)) == [rref]
        assert gc(S, dry_run=True).deleted_rrefs == (rref,)
        assert not os.listdir(os.path.join(S.storage, ".temproots"))
        with pytest.raises(StoreError) as ei:
            instantiate(
                lambda r=None: mkdrv({"name": "new"}, match_only(), build_wrapper(_out), r), S=S
            )
        assert str(ei.value).endswith(
            "the store is on a read-only filesystem: it serves queries, verify and fully "
            "cached realizes; build into a writable store"
        )


def test_mkdtemp_in_passes_over_a_name_left_by_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder already holding the next name (a killed process with the same pid) is
    left alone; mkdtemp_in takes the name after it."""
    monkeypatch.setattr(fsops, "_TEMP_SEQ", itertools.count(5))
    taken = tmp_path / f"build-{os.getpid()}-00000005"
    taken.mkdir()
    (taken / "keep.txt").write_text("x")
    got = mkdtemp_in(str(tmp_path), "build")
    assert got == str(tmp_path / f"build-{os.getpid()}-00000006")
    assert os.listdir(got) == [] and (taken / "keep.txt").read_text() == "x"


def test_this_pid_follows_a_fork() -> None:
    """this_pid is the process id, in a forked child too."""
    assert fsops.this_pid() == os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        os.write(w, f"{fsops.this_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        got, real = f.read().split()
    assert os.waitpid(pid, 0)[1] == 0
    assert got == real == str(pid)

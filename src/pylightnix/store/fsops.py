"""Low-level filesystem operations with the crash-safety rules of the store.

Every object becomes visible by one ``rename`` of a complete temporary
folder or file that lives on the same filesystem, under a name unique to the
process, so a crash leaves at most leftovers that never block anything.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import shutil
import stat
from typing import Literal

from pylightnix.errors import StoreError

_RO_FILE_MASK = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
_FICLONE = 0x40049409
"""Linux ``ioctl`` number of ``FICLONE`` (share the extents of another file: a reflink)."""
_COPY_BLOCK = 1 << 20


_PID = [os.getpid()]


def _new_pid_after_fork() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_new_pid_after_fork)


def this_pid() -> int:
    """``os.getpid()`` without a system call (kept up to date across ``fork``)."""
    return _PID[0]


def unique_suffix() -> str:
    """A name part unique to this process and call."""
    return f"{_PID[0]}-{os.urandom(6).hex()}"


def fsync_path(path: str) -> None:
    """Flush a file or folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, mode: int = 0o444, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it."""
    d = os.path.dirname(path)
    tmp = os.path.join(d, f".tmp-{unique_suffix()}-{os.path.basename(path)}")
    try:
        write_private(tmp, data, mode=mode, durable=durable)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_missing():
            os.unlink(tmp)
        raise
    if durable:
        fsync_path(d)


def write_private(path: str, data: bytes, *, mode: int = 0o444, durable: bool = False) -> None:
    """Create ``path`` with ``data`` inside a folder that nobody else sees yet.

    Cheaper than :func:`atomic_write` (no temporary name, no rename): the
    folder itself becomes visible by one rename once complete.
    """
    # Created with its final mode (the descriptor stays writable); a chmod only
    # when the umask took bits away, since each chmod dirties the inode again.
    # Unbuffered: open, write, fstat, close (a file object costs four calls more).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


class _suppress_missing:  # noqa: N801 (a tiny context manager used like a function)
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, ev: object, tb: object) -> bool:
        return isinstance(ev, FileNotFoundError)


def unshare_hardlinks(root: str) -> int:
    """Give every regular file under ``root`` linked from elsewhere a private copy.

    A realizer may hard-link an outside file into its output (``os.link``,
    ``cp -al``): the store would then chmod the user's file to read-only and a
    later edit of it would change the stored realization. Each file whose link
    count is above one is replaced, in its folder, by a copy (a reflink where
    the filesystem can, else a plain copy) with the same permission bits; the
    other names keep the original file, untouched. Only such files pay more
    than one ``lstat``. Returns how many files were copied.
    """
    n = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for de in it:
                if de.is_dir(follow_symlinks=False):
                    stack.append(de.path)
                elif de.is_file(follow_symlinks=False):
                    st = de.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        private_copy(de.path, st)
                        n += 1
    return n


def private_copy(path: str, st: os.stat_result) -> None:
    """Replace the file ``path`` (whose ``lstat`` is ``st``) by a copy of its own.

    The copy is made under a unique name in the same folder and renamed over
    ``path``, so the original inode (and every other name of it) is only read.
    """
    d = os.path.dirname(path)
    tmp = os.path.join(d, f".unshare-{unique_suffix()}")
    dmode = None
    if not os.access(d, os.W_OK):
        # A read-only folder of the output (copied modes): writable while we copy.
        dmode = stat.S_IMODE(os.lstat(d).st_mode)
        os.chmod(d, dmode | stat.S_IWUSR)
    try:
        src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _clone_or_copy(src, dst)
                os.fchmod(dst, stat.S_IMODE(st.st_mode))
            finally:
                os.close(dst)
        finally:
            os.close(src)
        os.replace(tmp, path)
    except BaseException:
        with _suppress_missing():
            os.unlink(tmp)
        raise
    finally:
        if dmode is not None:
            os.chmod(d, dmode)


def _clone_or_copy(src: int, dst: int) -> None:
    """Copy the file ``src`` into the empty ``dst``: reflink, else in-kernel, else read/write."""
    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return
    except OSError:
        pass  # not supported here (ext4, tmpfs, another filesystem...)
    try:
        while os.copy_file_range(src, dst, _COPY_BLOCK * 64):
            pass
        return
    except OSError:
        # Unsupported (old kernel, some filesystems): restart from the beginning.
        os.lseek(src, 0, os.SEEK_SET)
        os.lseek(dst, 0, os.SEEK_SET)
        os.ftruncate(dst, 0)
    while True:
        buf = os.read(src, _COPY_BLOCK)
        if not buf:
            return
        view = memoryview(buf)
        while view:
            view = view[os.write(dst, view) :]


def make_readonly(path: str, *, durable: bool = False, skip_top: bool = False) -> None:
    """Remove write bits from a tree (executable bits kept); optionally fsync it.

    Folders are made read-only after their contents. ``skip_top`` leaves the
    top folder writable (a folder must stay writable to be renamed into
    another parent by a non-root user).
    """
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            if durable:
                fsync_path(p)
            if st.st_mode & ~_RO_FILE_MASK:  # already read-only (reserved files): no chmod
                os.chmod(p, stat.S_IMODE(st.st_mode) & _RO_FILE_MASK)
        for n in dirnames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            if durable:
                fsync_path(p)
            os.chmod(p, stat.S_IMODE(st.st_mode) & _RO_FILE_MASK)
    if durable:
        fsync_path(path)
    if not skip_top:
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & _RO_FILE_MASK)


def make_writable(path: str) -> None:
    """Give the owner write permission on a whole tree (to edit or delete it)."""
    if not os.path.lexists(path):
        return
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(p, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)


def remove_tree(path: str) -> None:
    """Delete a (possibly read-only) tree or file; a missing path is fine."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    # Only folders get their write bit back: unlinking a file needs a writable
    # folder, not a writable file, and a file may share its inode with a stored
    # realization (a build log hard-linked into its first output).
    for dirpath, dirnames, _ in os.walk(path):
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
        for n in dirnames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(p, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    shutil.rmtree(path)


def remove_via_trash(path: str, trashdir: str) -> None:
    """Delete a tree so that it disappears at once: rename it away, then remove.

    ``trashdir`` must be on the same filesystem; a crash leaves the renamed
    tree in ``trashdir``, which garbage collection sweeps.
    """
    os.makedirs(trashdir, exist_ok=True)
    dst = os.path.join(trashdir, f"trash-{unique_suffix()}-{os.path.basename(path)}")
    try:
        os.chmod(os.path.dirname(path), os.stat(os.path.dirname(path)).st_mode | stat.S_IWUSR)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IWUSR)
        os.rename(path, dst)
    except FileNotFoundError:
        return
    remove_tree(dst)


_TEMP_SEQ = itertools.count(int.from_bytes(os.urandom(3), "big"))
"""Per-process sequence of temporary folder names (started at random: a process
reusing the pid of a killed one skips the names it left behind, see below)."""


def mkdtemp_in(parent: str, prefix: str) -> str:
    """A fresh private folder ``<prefix>-<pid>-<8 digits>`` in ``parent`` (created if missing).

    Named like ``tempfile.mkdtemp``'s folders (mode 0700), from a per-process
    sequence instead of random letters: one ``mkdir`` in the usual case; a
    name taken (a leftover of a killed process with the same pid) moves on
    to the next.

    Raises:
        StoreError: ``parent`` cannot hold it (a file there, no space, read-only...).
    """
    base = parent if os.path.isabs(parent) else os.path.abspath(parent)
    with store_stage("creating a temporary folder", parent):
        for _ in range(100):
            p = f"{base}{os.sep}{prefix}-{_PID[0]}-{next(_TEMP_SEQ) % 100_000_000:08d}"
            try:
                os.mkdir(p, 0o700)
                return p
            except FileExistsError:
                continue
            except (FileNotFoundError, NotADirectoryError):
                # No parent yet (made now), or a file in its place (the error names the parent).
                os.makedirs(parent, exist_ok=True)
    raise StoreError(f"cannot create a temporary folder in {parent!r}", path=parent)


def rename_noreplace(src: str, dst: str) -> bool:
    """Rename a folder to ``dst`` unless ``dst`` exists; return whether it moved.

    Linux refuses to rename a folder onto a non-empty folder (``ENOTEMPTY`` or
    ``EEXIST``); that is how two processes inserting the same object race
    safely: exactly one rename wins and the other sees the object in place.
    """
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST) or (
            e.errno == errno.EISDIR and os.path.isdir(dst)
        ):
            return False
        raise
    return True


def tree_bytes(path: str) -> int:
    """Apparent bytes of the files and symlinks of a tree (``du --apparent-size -b`` of
    files; folders count nothing, a file hard-linked twice counts once); 0 if missing.

    The one size function of the store: ``du``, GC reports and GC deletion
    (:func:`remove_tree_counting`) all measure with it, so they agree.
    """
    return _walk_bytes(path, remove=False)


def remove_tree_counting(path: str) -> int:
    """Delete a (possibly read-only) tree or file; return what :func:`tree_bytes` says of it.

    One pass: folders get their write bit back, files are unlinked as they are.
    """
    return _walk_bytes(path, remove=True)


def _walk_bytes(path: str, *, remove: bool) -> int:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        if remove:
            os.unlink(path)
        return st.st_size
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    dirs: list[str] = []
    while stack:
        d = stack.pop()
        if remove:
            os.chmod(d, 0o700)
            dirs.append(d)
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):  # d_type: folders need no stat
                    stack.append(e.path)
                    continue
                est = e.stat(follow_symlinks=False)
                if est.st_nlink > 1:
                    key = (est.st_dev, est.st_ino)
                    if key not in seen:
                        seen.add(key)
                        total += est.st_size
                else:
                    total += est.st_size
                if remove:
                    os.unlink(e.path)
    for d in reversed(dirs):
        os.rmdir(d)
    return total


_ADVICE = {
    errno.ENOSPC: "no space left on the device: free space on the store's filesystem, then retry",
    errno.EDQUOT: "disk quota exceeded: free space or raise the quota, then retry",
    errno.EXDEV: (
        "the temporary folder is on another filesystem than the store, so objects cannot be "
        "moved in atomically: keep the temporary folder (tmpdir, $PYLIGHTNIX_TMP) on the "
        "store's filesystem, e.g. the default <root>/tmp"
    ),
    errno.EROFS: (
        "the store is on a read-only filesystem: it serves queries, verify and fully cached "
        "realizes; build into a writable store"
    ),
    errno.EACCES: (
        "permission denied: the store belongs to another user or is read-only; use a store "
        "you can write (or ask its owner to build)"
    ),
    errno.EPERM: "operation not permitted: use a store you own",
    errno.ENOTDIR: (
        "a file stands where the store keeps a folder (garbage in the store): move that file "
        "away, then retry"
    ),
    errno.EISDIR: (
        "a folder stands where the store keeps a file (garbage in the store): move that "
        "folder away, then retry"
    ),
    errno.EEXIST: (
        "a file stands where the store keeps a folder (garbage in the store): move that file "
        "away, then retry"
    ),
}


def store_os_error(e: OSError, stage: str, path: str) -> StoreError:
    """A :class:`StoreError` naming the stage, the path and what to do about ``e``."""
    advice = _ADVICE.get(e.errno or 0, f"{e.strerror or e}")
    where = e.filename if isinstance(e.filename, str) else path
    return StoreError(f"{stage} failed at {where!r}: {advice}", path=where)


class store_stage:  # noqa: N801 (used like a function; a class is cheaper than a generator)
    """Turn an ``OSError`` raised inside the block into :func:`store_os_error` (chained).

    Args:
        stage: what was being done, for the message (``"writing the reserved
            files of an output of dref:..."``).
        path: the path to name when the error carries none.
    """

    __slots__ = ("path", "stage")

    def __init__(self, stage: str, path: str) -> None:
        self.stage = stage
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, ev: BaseException | None, tb: object) -> Literal[False]:
        if isinstance(ev, OSError) and not isinstance(ev, StoreError):
            raise store_os_error(ev, self.stage, self.path) from ev
        return False

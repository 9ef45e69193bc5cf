"""Content hashing of artifact trees and contexts (what an RRef's hash covers).

The tree hash is a Merkle hash over names, structure, bytes, the executable
bit and symlink targets, visited in sorted byte order of names, so that the
same tree gives the same hash on every filesystem and machine. Metadata
(times, owners, other permission bits) is never hashed. Files are streamed in
large blocks (memory stays flat in file size) and hashed in parallel threads
(``hashlib`` releases the GIL while it digests).

Encoding of one folder: for every entry, sorted by name bytes,
``kind + name + NUL + payload + NUL`` where kind is ``f`` (file), ``x``
(executable file), ``d`` (folder) or ``l`` (symlink), and payload is the
file's or folder's raw sha256 digest or the link's target bytes. The folder's
digest is the sha256 of ``b"pylightnix-tree-v1\\0"`` followed by its entries.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from pylightnix.config import canonical_json, canonical_tree, short_hash
from pylightnix.errors import StoreError
from pylightnix.types import Context, HashPart

_TREE_TAG = b"pylightnix-tree-v1\0"
_RREF_TAG = b"pylightnix-rref-v1\0"
_FAILED_TAG = b"pylightnix-rref-failed-v1\0"
_CTX_TAG = b"pylightnix-context-v1\0"
_PARALLEL_MIN_BYTES = 1 << 20
"""Below this total size, hashing in one thread is faster than a thread pool."""


_SMALL_FILE = 1 << 16
"""Files up to this size are read with one ``read`` (no buffered file object)."""


def hash_file(path: str) -> bytes:
    """Raw sha256 digest of a file's bytes, streamed."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


class TreeEntry(NamedTuple):
    """One entry of a folder as the tree hash sees it (with its ``lstat``)."""

    kind: bytes  # b"f", b"x", b"d", b"l"; b"?" for what cannot be stored
    name: bytes
    path: str
    st: os.stat_result
    target: bytes = b""

    @property
    def size(self) -> int:
        return self.st.st_size


def _hash_entry(e: TreeEntry) -> bytes:
    """Raw sha256 digest of the file of ``e``: a small one read whole (three system calls)."""
    if e.size > _SMALL_FILE:
        return hash_file(e.path)
    fd = os.open(e.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, e.size + 1)
        if len(data) == e.size:  # as long as its lstat said, and no byte more
            return hashlib.sha256(data).digest()
        # It grew or shrank since its lstat, or a short read: read to the end.
        h = hashlib.sha256(data)
        while chunk := os.read(fd, _SMALL_FILE):
            h.update(chunk)
        return h.digest()
    finally:
        os.close(fd)


@dataclass
class TreeWalk:
    """The shape of a tree from one ``scandir``/``lstat`` pass: every folder with its
    entries sorted by name bytes (parents before children), the files, their total size
    and what cannot be stored (FIFOs, sockets, devices)."""

    root: str
    dirs: list[tuple[str, list[TreeEntry]]]
    files: list[TreeEntry]
    total: int
    odd: list[TreeEntry]


def _scan_dir(path: str) -> list[TreeEntry]:
    out: list[TreeEntry] = []
    with os.scandir(path) as it:
        for de in it:
            st = de.stat(follow_symlinks=False)
            m = st.st_mode
            name = os.fsencode(de.name)
            if stat.S_ISLNK(m):
                out.append(TreeEntry(b"l", name, de.path, st, os.fsencode(os.readlink(de.path))))
            elif stat.S_ISDIR(m):
                out.append(TreeEntry(b"d", name, de.path, st))
            elif stat.S_ISREG(m):
                out.append(TreeEntry(b"x" if m & stat.S_IXUSR else b"f", name, de.path, st))
            else:
                out.append(TreeEntry(b"?", name, de.path, st))
    out.sort(key=lambda e: e.name)
    return out


def walk_tree(root: str, *, exclude: Iterable[str] = ()) -> TreeWalk:
    """One pass over the tree under ``root``: what :func:`hash_tree` hashes, with each
    entry's ``lstat`` (callers check kinds, link counts and modes from it).

    Args:
        root: a folder.
        exclude: top-level names to leave out (the store's reserved folder).
    """
    excl = {os.fsencode(e) for e in exclude}
    w = TreeWalk(root, [], [], 0, [])
    stack = [root]
    while stack:
        d = stack.pop()
        entries = _scan_dir(d)
        if d == root and excl:
            entries = [e for e in entries if e.name not in excl]
        w.dirs.append((d, entries))
        for e in entries:
            if e.kind == b"d":
                stack.append(e.path)
            elif e.kind in (b"f", b"x"):
                w.files.append(e)
                w.total += e.size
            elif e.kind == b"?":
                w.odd.append(e)
    return w


def digest_tree(w: TreeWalk, *, threads: int | None = None) -> str:
    """Hex sha256 Merkle digest of a walked tree (see :func:`hash_tree`); the files are
    read now.

    Raises:
        StoreError: the tree holds something other than files, folders and symlinks.
    """
    if w.odd:
        p = w.odd[0].path
        raise StoreError(
            f"cannot hash {p!r}: it is not a regular file, folder or symlink "
            "(sockets, FIFOs and devices cannot be stored; remove it from the output)",
            path=p,
        )
    digests: dict[str, bytes]
    if w.total < _PARALLEL_MIN_BYTES or len(w.files) < 2:
        digests = {e.path: _hash_entry(e) for e in w.files}
    else:
        n = threads or min(8, (os.cpu_count() or 1) * 2)
        # Large files first so that one big file does not finish last alone.
        order = sorted(w.files, key=lambda e: -e.size)
        from concurrent.futures import ThreadPoolExecutor  # lazily: start-up (issue 15)

        with ThreadPoolExecutor(max_workers=n) as ex:
            digests = dict(
                zip(
                    (e.path for e in order),
                    ex.map(hash_file, (e.path for e in order)),
                    strict=False,
                )
            )
    # Folders were discovered parents-first; fold them children-first.
    for d, entries in reversed(w.dirs):
        h = hashlib.sha256(_TREE_TAG)
        for e in entries:
            payload = e.target if e.kind == b"l" else digests[e.path]
            h.update(e.kind + e.name + b"\0" + payload + b"\0")
        digests[d] = h.digest()
    return digests[w.root].hex()


def hash_tree(root: str, *, exclude: Iterable[str] = (), threads: int | None = None) -> str:
    """Hex sha256 Merkle digest of the tree under ``root`` (``root`` itself unnamed).

    Args:
        root: a folder.
        exclude: top-level names to leave out (the store's reserved folder).
        threads: worker threads for file hashing (default: by CPU count).

    Raises:
        StoreError: the tree holds something other than files, folders and symlinks.
    """
    # First pass: the shape of the tree; second: file digests (in parallel).
    return digest_tree(walk_tree(root, exclude=exclude), threads=threads)


def context_json(ctx: Context) -> bytes:
    """Canonical bytes of a (direct) context: what is hashed and stored as ``context.json``.

    >>> context_json({"dref:b": ["rref:2", "rref:1"]})
    b'{"dref:b":["rref:1","rref:2"]}'
    """
    data = {str(k): sorted(v) for k, v in ctx.items()}
    try:
        for refs in data.values():
            "".join(refs)
    except TypeError:  # not only strings: let the general encoder judge it
        return canonical_json(data)
    # Strings in fresh lists: a tree, for the encoder built once.
    return canonical_tree(data)


def context_hash(ctx: Context) -> str:
    """Hex digest identifying a (direct) build context; list order does not matter.

    >>> context_hash({}) == context_hash({})
    True
    """
    return context_json_hash(context_json(ctx))


def context_json_hash(data: bytes) -> str:
    """:func:`context_hash` of the context whose :func:`context_json` is ``data``."""
    return hashlib.sha256(_CTX_TAG + data).hexdigest()


def realization_hash(ctx_hash: str, tree_hash: str) -> HashPart:
    """The RRef hash part: covers the context and every artifact."""
    return short_hash(_RREF_TAG + ctx_hash.encode() + b"\0" + tree_hash.encode())


def failed_realization_hash(ctx_hash: str, tree_hash: str, failure_json: bytes) -> HashPart:
    """The RRef hash part of a failed realization (``realize/failures.py``).

    It also covers the bytes of ``__pylightnix__/failure.json``, under another
    domain tag than :func:`realization_hash`, so a failed realization never
    shares an RRef with a successful one.

    >>> failed_realization_hash("c", "t", b"{}") != realization_hash("c", "t")
    True
    """
    digest = short_hash(failure_json)
    return short_hash(
        _FAILED_TAG + ctx_hash.encode() + b"\0" + tree_hash.encode() + b"\0" + digest.encode()
    )

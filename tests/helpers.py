"""Helpers shared by test modules of several layers."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import time
from collections.abc import Callable


def listing(root: str) -> list[tuple[str, int, bytes]]:
    """Every path under ``root`` with its mode and bytes (file contents, symlink targets).

    A full snapshot of a tree, to compare before and after an operation.
    """
    out: list[tuple[str, int, bytes]] = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            data = b""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            elif stat.S_ISLNK(st.st_mode):
                data = os.fsencode(os.readlink(p))
            out.append((os.path.relpath(p, root), stat.S_IMODE(st.st_mode), data))
    return sorted(out)


def run_on_pty(
    args: list[str],
    env: dict[str, str],
    *,
    when: tuple[bytes, Callable[[], None]] | None = None,
    timeout: float = 120.0,
) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal; return exit code, stdout and the terminal's text.

    ``when=(marker, action)`` calls ``action`` once the terminal has shown ``marker``
    (e.g. to let a blocked build go on).
    """
    master, slave = pty.openpty()
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=slave, env=env, stdin=subprocess.DEVNULL
    ) as p:
        os.close(slave)
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not b:
                break
            seen += b
            if when is not None and when[0] in seen:
                when[1]()
                when = None
        try:
            code = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()  # bounded: a hung child fails the test instead of hanging it
            raise
        assert p.stdout is not None
        out = p.stdout.read().decode()
    os.close(master)
    return code, out, seen.decode("utf-8", "replace")


def index_lines(storage: str, ref: str, kind: str | None = None) -> list[list[str]]:
    """The lines of the ``index.tsv`` of the derivation of ``ref`` (a DRef or an RRef),
    split into fields; only those of ``kind`` (``R``, ``F``, ``S``, ``C``) when given."""
    dirname = ref[5:] if ref.startswith("dref:") else ref[38:]
    try:
        with open(os.path.join(storage, dirname, "index.tsv")) as f:
            lines = [x.split("\t") for x in f.read().splitlines()]
    except FileNotFoundError:
        return []
    return [x for x in lines if kind is None or x[0] == kind]


STORE_V1_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "store-v1.tar.gz")
"""A store written by the last store-v1 release (tests/fixtures/make_store_v1.py)."""


def unpack_store_v1(root: str) -> None:
    """Make the folder ``root`` and unpack the store-v1 fixture there (``root/store-v1``)."""
    import tarfile

    os.makedirs(root)
    with tarfile.open(STORE_V1_FIXTURE) as tar:
        tar.extractall(root, filter="tar")

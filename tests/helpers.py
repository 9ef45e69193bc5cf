"""Helpers shared by test modules of several layers."""

from __future__ import annotations

import os
import pty
import stat
import subprocess


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


def run_on_pty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal; return exit code, stdout and the terminal's text."""
    master, slave = pty.openpty()
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=slave, env=env, stdin=subprocess.DEVNULL
    ) as p:
        os.close(slave)
        chunks: list[bytes] = []
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not b:
                break
            chunks.append(b)
        assert p.stdout is not None
        out = p.stdout.read().decode()
        code = p.wait(timeout=120)
    os.close(master)
    return code, out, b"".join(chunks).decode("utf-8", "replace")

"""Helpers shared by test modules of several layers."""

from __future__ import annotations

import os
import stat


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

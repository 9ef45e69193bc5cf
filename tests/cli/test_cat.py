"""``pylightnix cat``."""

from __future__ import annotations

import os
from typing import Any

from pylightnix import fsinit, instantiate, mkSS, realize1, rref2path
from pylightnix.stages.trivial import mknode
from tests.cli.conftest import Built, Run


def test_cat_prints_a_file_of_a_realization(built: Built, plx: Run) -> None:
    """cat prints the bytes of a file; a DRef with one realization stands for it."""
    assert plx("cat", built.rrefs["train"], "weights/model.txt").out == (
        "model(lr=0.1, rows=100)\n"
    )
    out = plx("cat", built.drefs["data"], "data.csv").out
    assert out.splitlines()[:3] == ["0,0", "1,1", "2,4"]


def test_cat_refuses_missing_files_and_escapes(built: Built, plx: Run) -> None:
    """A missing file, a folder or a path leaving the realization is a one-line error."""
    r = built.rrefs["train"]
    assert plx("cat", r, "nope.txt", code=1).err == (
        f"Error: 'nope.txt' is not a file there ({r}): list its files with `pylightnix show {r}`\n"
    )
    hint = f"({r}): list its files with `pylightnix show {r}`\n"
    assert plx("cat", r, "weights", code=1).err == f"Error: 'weights' is not a file there {hint}"
    assert plx("cat", r, "../../FORMAT", code=1).err == (
        f"Error: '../../FORMAT' is outside the realization {hint}"
    )


def test_cat_follows_links_inside_the_store_only(root: str, plx: Run, tmp_path: Any) -> None:
    """A link to a file of the same realization works; a link out of the store is refused."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    S = fsinit(mkSS(root))
    r = realize1(
        instantiate(
            mknode,
            {"name": "links"},
            {"data.txt": "inside\n"},
            S=S,
        )
    )
    p = rref2path(r, S)
    os.chmod(p, 0o755)
    os.symlink("data.txt", os.path.join(p, "same"))
    os.symlink(str(secret), os.path.join(p, "out"))
    os.chmod(p, 0o555)
    assert plx("cat", r, "same").out == "inside\n"
    assert plx("cat", r, "out", code=1).err == (
        f"Error: 'out' is a symlink leading outside the store (to {str(secret)!r}) ({r}): "
        f"list its files with `pylightnix show {r}`\n"
    )

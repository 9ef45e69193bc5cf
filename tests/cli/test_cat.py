"""``pylightnix cat``."""

from __future__ import annotations

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

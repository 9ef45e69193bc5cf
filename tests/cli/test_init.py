"""``pylightnix init``."""

from __future__ import annotations

import os

from tests.cli.conftest import Run


def test_init_creates_the_store_and_is_idempotent(plx: Run, root: str) -> None:
    """init makes the FORMAT file; a second init succeeds and keeps it."""
    assert plx("init").out == f"store ready at {root}/store-v2\n"
    with open(os.path.join(root, "store-v2", "FORMAT")) as f:
        assert f.read() == "pylightnix store-v2\n"
    assert plx("init").out == f"store ready at {root}/store-v2\n"


def test_init_refuses_a_foreign_folder(plx: Run, root: str) -> None:
    """A non-empty folder that is no store is refused and left alone."""
    os.makedirs(os.path.join(root, "store-v2"))
    with open(os.path.join(root, "store-v2", "mine.txt"), "w") as f:
        f.write("x")
    r = plx("init", code=1)
    assert r.err == (
        f"Error: '{root}/store-v2' is not empty and is not a pylightnix store-v2 store: "
        "choose an empty or new folder\n"
    )
    assert os.listdir(os.path.join(root, "store-v2")) == ["mine.txt"]

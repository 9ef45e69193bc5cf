"""Shared argument handling: refs given as store paths, paths outside the store."""

from __future__ import annotations

import os

from tests.cli.conftest import Built, Run


def test_a_path_inside_a_realization_names_it(built: Built, plx: Run) -> None:
    """A file path inside a realization (and the derivation folder) resolve to their refs."""
    path = plx("show", built.rrefs["train"], "--json").json()["path"]
    inner = os.path.join(path, "weights", "model.txt")
    assert plx("show", inner, "--json").json()["rref"] == built.rrefs["train"]
    assert plx("show", os.path.dirname(path), "--json").json()["dref"] == built.drefs["train"]


def test_a_path_outside_the_store_is_refused(built: Built, plx: Run, root: str) -> None:
    """An existing path that is not in the store is a one-line error naming the store."""
    r = plx("show", "/", code=1)
    assert r.err == (
        f"Error: '/' is not inside the store at '{root}/store-v2': give a dref:..., an "
        "rref:..., or a path into that store\n"
    )

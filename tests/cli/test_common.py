"""Shared argument handling: refs given as store paths, paths outside the store."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from pylightnix.cli.common import emit_json_stream
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


def test_streamed_json_prints_what_json_dumps_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """emit_json_stream prints exactly json.dumps(indent=2, sort_keys=True) of the whole list."""
    rows: list[Any] = [
        {"name": 'é "q" \\ \n', "n": -(10**30), "f": 0.1, "ok": True, "no": False, "x": None},
        {"inf": float("inf"), "nan": float("nan"), "neg": float("-inf"), "big": 1e300},
        {"nested": [1, {"a": None}]},
        {},
        "plain",
    ]
    for batch in (rows, rows[:1], []):
        emit_json_stream(iter(batch))
        assert capsys.readouterr().out == json.dumps(batch, indent=2, sort_keys=True) + "\n"

"""``pylightnix graph``."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.cli.conftest import Built, Run


def test_graph_prints_dot(built: Built, plx: Run) -> None:
    """The DOT text has one node per realization and an edge per dependency."""
    r = built.rrefs
    out = plx("graph", r["report"]).out.splitlines()
    assert out[0] == "digraph pylightnix {" and out[-1] == "}"
    assert f'  "{r["report"]}" -> "{r["train"]}";' in out
    assert f'  "{r["train"]}" -> "{r["data"]}";' in out
    assert sum(1 for x in out if "[label=" in x) == 3


def test_graph_svg_without_graphviz_is_a_clear_error(
    built: Built, plx: Run, tmp_path: object
) -> None:
    """With no `dot` on PATH, --svg exits 1 and says what to do."""
    r = plx("graph", built.rrefs["report"], "--svg", "g.svg", env={"PATH": "/nonexistent"}, code=1)
    assert r.err == (
        "Error: --svg needs Graphviz, but `dot` is not on PATH: install graphviz, or run "
        "without --svg and render the DOT text elsewhere\n"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_svg_with_graphviz(built: Built, plx: Run, tmp_path: object) -> None:
    """With `dot` present, --svg writes an SVG file."""
    out = os.path.join(str(tmp_path), "g.svg")
    plx("graph", built.rrefs["report"], "--svg", out)
    with open(out) as f:
        assert "<svg" in f.read()

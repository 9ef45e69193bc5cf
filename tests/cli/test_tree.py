"""``pylightnix tree``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_tree_of_a_realization(built: Built, plx: Run) -> None:
    """The realization tree follows contexts down to the data."""
    r = built.rrefs
    assert plx("tree", r["report"]).out == (
        f"{r['report']}\n└───{r['train']}\n    └───{r['data']}\n"
    )


def test_tree_json_of_a_derivation(built: Built, plx: Run) -> None:
    """The derivation tree follows configs; --json nests it."""
    d = built.drefs
    assert plx("tree", d["report"], "--json").json() == {
        "ref": d["report"],
        "deps": [{"ref": d["train"], "deps": [{"ref": d["data"], "deps": []}]}],
    }

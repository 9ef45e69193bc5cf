"""Tests of ui/graph.py: statuses of derivations and realizations, DOT text, SVG by dot."""

from __future__ import annotations

import pytest

from pylightnix import (
    Build,
    PylightnixError,
    StorageSettings,
    build_wrapper,
    instantiate,
    match_latest,
    mkdrvE,
    realizeE,
    runs,
)
from pylightnix.refs import dref_name
from pylightnix.ui.graph import COLOURS, Graph, Node, ref_graph, render_svg, to_dot
from tests.ui.conftest import Client, Swept
from tests.ui.sweep import LRS, dataset


def test_dref_graph_statuses(swept: Swept) -> None:
    """A sweep point with two good seeds competes; one with a failed seed is realized; data too."""
    competing = ref_graph(swept.trains[0], swept.S)
    assert {(n.name, n.status, n.realizations, n.failed) for n in competing.nodes} == {
        ("train", "competing", 2, 0),
        ("dataset", "realized", 1, 0),
    }
    data = next(n.ref for n in competing.nodes if n.name == "dataset")
    assert competing.edges == ((swept.trains[0], data),)
    half = ref_graph(swept.trains[LRS.index(1.0)], swept.S)
    assert {(n.name, n.status, n.failed) for n in half.nodes} == {
        ("train", "realized", 1),
        ("dataset", "realized", 0),
    }
    assert competing.cut is False


def test_rref_graph_statuses(swept: Swept) -> None:
    """Realizations: the failed seed is failed; good seeds built in one context compete."""
    rs = runs(swept.trains[LRS.index(1.0)], S=swept.S)
    bad = next(r for r in rs if r.status == "failed")
    good = next(r for r in rs if r.status == "ok")
    assert {(n.name, n.status) for n in ref_graph(bad.rref, swept.S).nodes} == {
        ("train", "failed"),
        ("dataset", "realized"),
    }
    assert {(n.name, n.status) for n in ref_graph(good.rref, swept.S).nodes} == {
        ("train", "realized"),
        ("dataset", "realized"),
    }
    two = runs(swept.trains[0], S=swept.S)[0]
    assert ("train", "competing") in {
        (n.name, n.status) for n in ref_graph(two.rref, swept.S).nodes
    }


def _fail(b: Build) -> None:
    raise RuntimeError("always")


def test_not_realized_and_only_failed(S: StorageSettings) -> None:
    """An instantiated-only derivation is 'none'; one whose every build failed is 'failed'."""
    d = instantiate(dataset, S=S)[1].targets[0]
    assert [n.status for n in ref_graph(d, S).nodes] == ["none"]
    clo = instantiate(
        lambda r: mkdrvE({"name": "bad"}, match_latest(), build_wrapper(_fail), r), S=S
    )
    realizeE(clo)
    bad = clo[1].targets[0]
    assert [(n.status, n.realizations, n.failed) for n in ref_graph(bad, S).nodes] == [
        ("failed", 1, 1)
    ]
    assert str(dref_name(bad)) == "bad"


def test_to_dot_colours_links_and_marks_the_root() -> None:
    """Each node is filled by its status, links to its page, and the root is drawn thicker."""
    a, b = "dref:" + "a" * 32 + "-top", "rref:" + "b" * 32 + "-" + "c" * 32 + "-dep"
    g = Graph(
        a, (Node(a, "top", "competing", 3, 1), Node(b, "dep", "failed", 1, 1)), ((a, b),), False
    )
    assert to_dot(g).splitlines() == [
        "digraph pylightnix {",
        "  rankdir=BT;",
        '  bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=11];',
        f'  "{a}" -> "{b}";',
        f'  "{a}" [label="top\\naaaaaaaa\\n3 realizations, 1 failed", '
        f'fillcolor="{COLOURS["competing"]}", URL="/dref/{a}", target="_top", penwidth=3];',
        f'  "{b}" [label="dep\\nbbbbbbbb", fillcolor="{COLOURS["failed"]}", '
        f'URL="/rref/{b}", target="_top"];',
        "}",
    ]


def test_render_svg_draws_links_without_a_prolog(swept: Swept) -> None:
    """dot draws an inline SVG element whose nodes link to their pages."""
    svg = render_svg(to_dot(ref_graph(swept.trains[0], swept.S)))
    assert svg.startswith("<svg")
    assert f'xlink:href="/dref/{swept.trains[0]}"' in svg
    assert "<script" not in svg


def test_render_svg_without_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dot on PATH the error says what to install."""
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PylightnixError) as e:
        render_svg("digraph {}")
    assert str(e.value) == (
        "the graph page needs Graphviz, but `dot` is not on PATH: install graphviz "
        "(apt-get install graphviz) and reload"
    )


def test_graph_api_answers_nodes_and_svg(client: Client, swept: Swept) -> None:
    """The graph API gives nodes, edges, colours and the SVG the page shows."""
    g = client.get(f"/api/graph/{swept.trains[0]}").json()
    assert g["root"] == swept.trains[0]
    assert sorted(n["status"] for n in g["nodes"]) == ["competing", "realized"]
    assert g["colours"] == COLOURS
    assert g["svg"].startswith("<svg")
    bad = client.get("/api/graph/nonsense")
    assert (bad.status, bad.json()["error"]) == (
        400,
        "'nonsense' is neither a DRef (dref:...) nor an RRef (rref:...)",
    )


def test_graph_of_a_pipeline_has_every_stage_once(swept: Swept) -> None:
    """The report's graph holds the report, five trains and the data set, each once."""
    g = ref_graph(swept.report, swept.S)
    assert sorted((n.name, n.status) for n in g.nodes) == [
        ("dataset", "realized"),
        ("report", "realized"),
        *[("train", "competing")] * 4,
        ("train", "realized"),
    ]
    assert len(g.edges) == 10

"""The dependency graph of a ref with status colours, laid out by Graphviz ``dot``.

A derivation's status counts its realizations: none, only failed ones, one,
or several competing ones (a matcher chooses among them). A realization is
failed or realized, and competing when others were built in the same context.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from pylightnix.errors import PylightnixError
from pylightnix.hashing import context_hash
from pylightnix.realize.failures import failed_rhashes
from pylightnix.refs import is_rref, parse_dref, parse_rref, rref2dref
from pylightnix.store.query import drefdeps1, drefrrefs, drefrrefs_chash, rrefctx, rrefdeps1
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

MAX_NODES = 400
"""A graph stops growing at this many nodes (the page says it was cut)."""

COLOURS: dict[str, str] = {
    "realized": "#b7e4c7",
    "competing": "#ffd166",
    "failed": "#f4a6a6",
    "none": "#e9ecef",
}
"""Fill colour of each status (the page's legend uses the same)."""


@dataclass(frozen=True)
class Node:
    """One ref of the graph: its status and how many realizations it has (DRefs)."""

    ref: str
    name: str
    status: str
    realizations: int
    failed: int


@dataclass(frozen=True)
class Graph:
    """Nodes, edges (user -> dependency) and whether :data:`MAX_NODES` cut the walk."""

    root: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    cut: bool


def _dref_node(d: DRef, S: StorageSettings) -> Node:
    rrefs = drefrrefs(d, S)
    bad = failed_rhashes(d, S)
    nfailed = sum(1 for r in rrefs if parse_rref(r)[0] in bad)
    ok = len(rrefs) - nfailed
    status = (
        "none" if not rrefs else "failed" if ok == 0 else "realized" if ok == 1 else "competing"
    )
    return Node(d, str(parse_dref(d)[1]), status, len(rrefs), nfailed)


def _rref_node(r: RRef, S: StorageSettings) -> Node:
    rhash, _, name = parse_rref(r)
    d = rref2dref(r)
    if rhash in failed_rhashes(d, S):
        return Node(r, str(name), "failed", 1, 1)
    same = drefrrefs_chash(d, context_hash(rrefctx(r, S)), S)
    return Node(r, str(name), "competing" if len(same) > 1 else "realized", 1, 0)


def ref_graph(root: DRef | RRef, S: StorageSettings) -> Graph:
    """The graph of ``root`` and everything it depends on (configs for a DRef, contexts for
    an RRef), at most :data:`MAX_NODES` nodes."""
    deps: dict[str, list[str]] = {}
    stack: list[str] = [root]
    cut = False
    while stack:
        n = stack.pop()
        if n in deps:
            continue
        if len(deps) >= MAX_NODES:
            cut = True
            break
        direct = rrefdeps1([RRef(n)], S) if is_rref(n) else drefdeps1([DRef(n)], S)
        kids = sorted(str(k) for k in direct)
        deps[n] = kids
        stack.extend(k for k in kids if k not in deps)
    nodes = tuple(
        _rref_node(RRef(n), S) if is_rref(n) else _dref_node(DRef(n), S) for n in sorted(deps)
    )
    edges = tuple((n, k) for n in sorted(deps) for k in deps[n] if k in deps)
    return Graph(root, nodes, edges, cut)


def _label(n: Node) -> str:
    short = n.ref.split(":", 1)[1][:8]
    extra = ""
    if not is_rref(n.ref):
        extra = f"\\n{n.realizations} realization{'s' if n.realizations != 1 else ''}"
        if n.failed:
            extra += f", {n.failed} failed"
    return f"{n.name}\\n{short}{extra}"


def to_dot(g: Graph) -> str:
    """DOT text of the graph: filled boxes by status, each a link to its page.

    >>> g = Graph("dref:" + "a" * 32 + "-m", (Node("dref:" + "a" * 32 + "-m", "m", "none", 0, 0),),
    ...           (), False)
    >>> print(to_dot(g).splitlines()[-2].replace("a" * 32, "A"))
      "dref:A-m" [label="m\\naaaaaaaa\\n0 realizations", fillcolor="#e9ecef", \
URL="/dref/dref:A-m", target="_top", penwidth=3];
    """
    lines = [
        "digraph pylightnix {",
        "  rankdir=BT;",
        '  bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=11];',
    ]
    for a, b in g.edges:
        lines.append(f'  "{a}" -> "{b}";')
    for n in g.nodes:
        kind = "rref" if is_rref(n.ref) else "dref"
        bold = ", penwidth=3" if n.ref == g.root else ""
        lines.append(
            f'  "{n.ref}" [label="{_label(n)}", fillcolor="{COLOURS[n.status]}", '
            f'URL="/{kind}/{n.ref}", target="_top"{bold}];'
        )
    lines.append("}")
    return "\n".join(lines)


_PROLOG = re.compile(r"\A.*?(?=<svg)", re.DOTALL)


def render_svg(dot_text: str) -> str:
    """The SVG element Graphviz ``dot`` draws for ``dot_text`` (XML prolog removed).

    Raises:
        PylightnixError: ``dot`` is not on PATH or failed.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise PylightnixError(
            "the graph page needs Graphviz, but `dot` is not on PATH: install graphviz "
            "(apt-get install graphviz) and reload"
        )
    proc = subprocess.run(
        [exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PylightnixError(f"dot failed to draw the graph: {err[0] if err else proc.returncode}")
    return _PROLOG.sub("", proc.stdout.decode("utf-8", "replace"), count=1)

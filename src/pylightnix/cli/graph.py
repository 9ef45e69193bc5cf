"""``pylightnix graph REF``: the dependency graph as Graphviz DOT (SVG when ``dot`` exists)."""

from __future__ import annotations

import shutil
import subprocess

import click

from pylightnix.cli.common import parse_ref, store_settings
from pylightnix.cli.tree import dep_graph
from pylightnix.errors import PylightnixError
from pylightnix.refs import is_rref, parse_dref, parse_rref


def _label(ref: str) -> str:
    if is_rref(ref):
        rhash, _, name = parse_rref(ref)
        return f"{name}\\n{rhash[:8]}"
    dhash, name = parse_dref(ref)
    return f"{name}\\n{dhash[:8]}"


def to_dot(root: str, g: dict[str, list[str]]) -> str:
    """DOT text of a dependency graph, edges from a user to what it depends on.

    >>> print(to_dot("dref:" + "a" * 32 + "-m", {"dref:" + "a" * 32 + "-m": []}))
    digraph pylightnix {
      rankdir=BT;
      node [shape=box, fontname="monospace"];
      "dref:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-m" [label="m\\naaaaaaaa", style=bold];
    }
    """
    lines = ["digraph pylightnix {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for n in sorted(g):
        bold = ", style=bold" if n == root else ""
        lines.append(f'  "{n}" [label="{_label(n)}"{bold}];')
    lines.extend(f'  "{n}" -> "{d}";' for n in sorted(g) for d in g[n])
    lines.append("}")
    return "\n".join(lines)


@click.command("graph")
@click.argument("ref")
@click.option("--svg", "svg", metavar="FILE", help="Render to an SVG file with Graphviz `dot`.")
def graph_cmd(ref: str, svg: str | None) -> None:
    """Print the dependency graph of REF in Graphviz DOT format.

    \b
    Examples:
      pylightnix graph rref:...-report > report.dot
      pylightnix graph rref:...-report --svg report.svg   # needs Graphviz
    """
    S = store_settings()
    r = parse_ref(ref, S)
    dot_text = to_dot(r, dep_graph(r, S))
    if svg is None:
        click.echo(dot_text)
        return
    exe = shutil.which("dot")
    if exe is None:
        raise PylightnixError(
            "--svg needs Graphviz, but `dot` is not on PATH: install graphviz, or run "
            "without --svg and render the DOT text elsewhere"
        )
    proc = subprocess.run(
        [exe, "-Tsvg", "-o", svg], input=dot_text.encode(), capture_output=True, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PylightnixError(f"dot failed to render {svg!r}: {err[0] if err else proc.returncode}")
    click.echo(svg)

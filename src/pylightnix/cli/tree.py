"""``pylightnix tree REF``: the dependency tree of a ref (like ``nix-store -q --tree``)."""

from __future__ import annotations

from typing import Any

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.refs import is_rref
from pylightnix.store.query import drefdeps1, rrefdeps1
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef


def direct_deps(ref: str, S: StorageSettings) -> list[str]:
    """Direct dependencies: the context's RRefs of a realization, the config's DRefs of a
    derivation; sorted."""
    if is_rref(ref):
        return sorted(rrefdeps1([RRef(ref)], S))
    return sorted(drefdeps1([DRef(ref)], S))


def tree_lines(root: str, deps: dict[str, list[str]]) -> list[str]:
    """Draw the tree of ``root`` over ``deps``; a subtree shown before is elided as ``[...]``.

    >>> print("\\n".join(tree_lines("a", {"a": ["b", "c"], "b": ["c"], "c": ["d"], "d": []})))
    a
    ├───b
    │   └───c
    │       └───d
    └───c [...]
    """
    lines = [root]
    seen: set[str] = {root}

    def go(node: str, prefix: str) -> None:
        kids = deps.get(node, [])
        for i, k in enumerate(kids):
            last = i == len(kids) - 1
            branch, cont = ("└───", "    ") if last else ("├───", "│   ")
            if k in seen and deps.get(k):
                lines.append(f"{prefix}{branch}{k} [...]")
                continue
            seen.add(k)
            lines.append(f"{prefix}{branch}{k}")
            go(k, prefix + cont)

    go(root, "")
    return lines


def dep_graph(root: str, S: StorageSettings) -> dict[str, list[str]]:
    """Every ref reachable from ``root`` with its direct dependencies."""
    g: dict[str, list[str]] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if n in g:
            continue
        g[n] = direct_deps(n, S)
        stack.extend(g[n])
    return g


def _nested(node: str, g: dict[str, list[str]]) -> dict[str, Any]:
    return {"ref": node, "deps": [_nested(k, g) for k in g[node]]}


@click.command("tree")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the tree as nested JSON.")
def tree_cmd(ref: str, as_json: bool) -> None:
    """Show what REF depends on, transitively, as a tree.

    \b
    Examples:
      pylightnix tree rref:...-report
      pylightnix tree dref:...-report --json

    A realization's tree follows the realizations it was built from; a
    derivation's tree follows the derivations its config mentions.
    """
    S = store_settings()
    r = parse_ref(ref, S)
    g = dep_graph(r, S)
    if as_json:
        emit_json(_nested(r, g))
        return
    click.echo("\n".join(tree_lines(r, g)))

"""``pylightnix find``: realizations by stage name and age."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, parse_age, store_settings
from pylightnix.store.inspect import find


@click.command("find")
@click.option("--name", metavar="GLOB", help="Stage name glob, e.g. 'train*'.")
@click.option("--newer", metavar="AGE", help="Built within AGE (30m, 2h, 3d, 1w).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def find_cmd(name: str | None, newer: str | None, as_json: bool) -> None:
    """List realizations, oldest build first, filtered by name and age.

    \b
    Examples:
      pylightnix find --name 'train*' --newer 2h
      pylightnix find --json
    """
    age = parse_age(newer) if newer is not None else None
    out = find(name, age, store_settings())
    if as_json:
        emit_json(out)
        return
    for r in out:
        click.echo(r)

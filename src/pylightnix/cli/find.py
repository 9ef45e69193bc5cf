"""``pylightnix find``: realizations by stage name and age."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, parse_age, store_settings
from pylightnix.realize.failures import rref_failure
from pylightnix.store.inspect import find


@click.command("find")
@click.option("--name", metavar="GLOB", help="Stage name glob, e.g. 'train*'.")
@click.option("--newer", metavar="AGE", help="Built within AGE (30m, 2h, 3d, 1w).")
@click.option(
    "--status",
    type=click.Choice(["ok", "failed"]),
    help="Only successful or only failed realizations (realizeE, mkdrvE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def find_cmd(name: str | None, newer: str | None, status: str | None, as_json: bool) -> None:
    """List realizations, oldest build first, filtered by name, age and status.
    Failed ones are marked FAILED with their error.

    \b
    Examples:
      pylightnix find --name 'train*' --newer 2h
      pylightnix find --status ok --json
      pylightnix find --status failed
    """
    age = parse_age(newer) if newer is not None else None
    S = store_settings()
    out = [(r, rref_failure(r, S)) for r in find(name, age, S)]
    if status is not None:
        out = [(r, f) for r, f in out if (f is None) == (status == "ok")]
    if as_json:
        emit_json([r for r, _ in out])
        return
    for r, f in out:
        click.echo(r if f is None else f"{r}  FAILED {f.error}: {f.message}")

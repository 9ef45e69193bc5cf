"""``pylightnix export REF... -o FILE``: write the closure of realizations to an archive."""

from __future__ import annotations

import click

from pylightnix.cli.common import parse_rref_arg, store_settings
from pylightnix.store.archive import export_closure


@click.command("export")
@click.argument("refs", nargs=-1, required=True, metavar="RREF...")
@click.option("-o", "--output", required=True, metavar="FILE", help="Archive to write.")
@click.option("--compression", type=click.Choice(["gz", "xz"]), help="Compress the archive.")
def export_cmd(refs: tuple[str, ...], output: str, compression: str | None) -> None:
    """Export the realizations RREF and everything they were built from.

    \b
    Examples:
      pylightnix export rref:...-report -o report.tar.gz --compression gz
    """
    S = store_settings()
    rrefs = [parse_rref_arg(r, S) for r in refs]
    click.echo(export_closure(rrefs, output, S, compression=compression))  # type: ignore[arg-type]

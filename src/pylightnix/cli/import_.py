"""``pylightnix import FILE``: import a closure archive made by ``pylightnix export``."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, store_settings
from pylightnix.store.archive import import_closure


@click.command("import")
@click.argument("archive", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the imported target RRefs as JSON.")
def import_cmd(archive: str, as_json: bool) -> None:
    """Import a closure archive (every object is re-hashed before it enters the
    store) and print its target RRefs.

    \b
    Examples:
      pylightnix --store ./other import report.tar.gz
    """
    out = import_closure(archive, store_settings())
    if as_json:
        emit_json(out)
        return
    for r in out:
        click.echo(r)

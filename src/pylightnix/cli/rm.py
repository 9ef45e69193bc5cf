"""``pylightnix rm REF``: remove a realization, or a derivation with its realizations."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.errors import InUseError
from pylightnix.store.remove import rmref


@click.command("rm")
@click.argument("ref")
@click.option("--force", is_flag=True, help="Remove even if other objects or result links use it.")
@click.option("--json", "as_json", is_flag=True, help="Print the removed refs as JSON.")
def rm_cmd(ref: str, force: bool, as_json: bool) -> None:
    """Remove REF; refused (nothing removed) while something still uses it,
    unless --force.

    \b
    Examples:
      pylightnix rm rref:...-train
      pylightnix rm dref:...-train --force
    """
    S = store_settings()
    try:
        removed = rmref(parse_ref(ref, S), S, force=force)
    except InUseError as e:
        # The library's advice names its keyword; on the command line it is a flag.
        raise InUseError(
            str(e).replace("pass force=True", "use `pylightnix rm --force`"),
            **e._attrs,
        ) from None
    if as_json:
        emit_json(removed)
        return
    for r in removed:
        click.echo(f"removed {r}")

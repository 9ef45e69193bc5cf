"""``pylightnix referrers REF``: what in the store depends on a ref directly."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.refs import is_rref
from pylightnix.store.remove import dref_users, rref_users
from pylightnix.types import DRef, RRef


@click.command("referrers")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def referrers_cmd(ref: str, as_json: bool) -> None:
    """List what depends directly on REF: realizations built from a realization,
    derivations whose config mentions a derivation.

    \b
    Examples:
      pylightnix referrers rref:...-data --json
    """
    S = store_settings()
    r = parse_ref(ref, S)
    out = [str(x) for x in rref_users(RRef(r), S)] if is_rref(r) else dref_users(DRef(r), S)
    if as_json:
        emit_json(out)
        return
    for x in out:
        click.echo(x)

"""``pylightnix referrers REF``: what in the store depends on a ref directly."""

from __future__ import annotations

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.cli.tree import direct_deps
from pylightnix.refs import is_rref
from pylightnix.store.query import alldrefs, allrrefs
from pylightnix.store.settings import StorageSettings


def referrers(ref: str, S: StorageSettings) -> list[str]:
    """Stored realizations (for an RRef) or derivations (for a DRef) that use ``ref`` directly."""
    pool: list[str] = list(allrrefs(S)) if is_rref(ref) else list(alldrefs(S))
    return sorted(x for x in pool if ref in direct_deps(x, S))


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
    out = referrers(parse_ref(ref, S), S)
    if as_json:
        emit_json(out)
        return
    for x in out:
        click.echo(x)

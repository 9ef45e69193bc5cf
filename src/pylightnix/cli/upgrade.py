"""``pylightnix upgrade``: upgrade a store-v1 store to store-v2 in place."""

from __future__ import annotations

import dataclasses

import click

from pylightnix.cli.common import emit_json, store_settings
from pylightnix.store.upgrade import upgrade_store


@click.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def upgrade_cmd(as_json: bool) -> None:
    """Upgrade the store of an older version of this pylightnix (store-v1) to the
    current layout (store-v2), in place.

    \b
    Examples:
      pylightnix upgrade
      pylightnix --root /data/plx upgrade --json

    Only the per-derivation index files change: no object is copied or
    re-hashed. Stop the processes using the store first (the upgrade refuses
    otherwise). Interrupted, it resumes when run again.
    """
    res = upgrade_store(store_settings(must_exist=False))
    if as_json:
        emit_json(dataclasses.asdict(res))
        return
    moved = f" (moved from {res.renamed_from})" if res.renamed_from else ""
    click.echo(
        f"upgraded {res.storage}{moved}: {res.derivations} derivations, "
        f"{res.realizations} realizations indexed"
    )

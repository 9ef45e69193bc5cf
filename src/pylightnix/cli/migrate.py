"""``pylightnix migrate OLD_STORE``: import a store of the original Pylightnix."""

from __future__ import annotations

import dataclasses

import click

from pylightnix.cli.common import emit_json, store_settings
from pylightnix.store.migrate import migrate_store


@click.command("migrate")
@click.argument("old_store", metavar="OLD_STORE")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate_cmd(old_store: str, as_json: bool) -> None:
    """Re-hash every derivation and realization of an original Pylightnix store
    (store-v0, versions 0.2.x and 0.3.x) into this store.

    \b
    Examples:
      pylightnix migrate ~/_pylightnix
      pylightnix --store /data/new migrate /data/old/_pylightnix/store-v0 --json

    The old store is only read. Prints each old -> new ref, then what could not
    be carried over and why; exits 1 when something was skipped.
    """
    S = store_settings()
    res = migrate_store(old_store, S=S)
    if as_json:
        emit_json(
            {
                **dataclasses.asdict(res),
                "skipped": [dataclasses.asdict(x) for x in res.skipped],
                "ok": res.ok,
            }
        )
    else:
        for old, new in [*res.drefs.items(), *res.rrefs.items()]:
            click.echo(f"{old} -> {new}")
        for sk in res.skipped:
            click.echo(f"SKIPPED {sk.ref}: {sk.reason}")
        click.echo(
            f"migrated {len(res.drefs)} derivations and {len(res.rrefs)} realizations, "
            f"skipped {len(res.skipped)}"
        )
    if not res.ok:
        raise click.exceptions.Exit(1)

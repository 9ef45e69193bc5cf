"""``pylightnix init``: create a store."""

from __future__ import annotations

import click

from pylightnix.cli.common import store_settings
from pylightnix.store.init import fsinit


@click.command("init")
def init_cmd() -> None:
    """Create the store (nothing happens if it exists already).

    \b
    Examples:
      pylightnix --store ./plx init
      PYLIGHTNIX_ROOT=/data/plx pylightnix init
    """
    S = fsinit(store_settings(must_exist=False))
    click.echo(f"store ready at {S.storage}")

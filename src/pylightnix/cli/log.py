"""``pylightnix log REF``: the captured output of a build (like ``nix log``)."""

from __future__ import annotations

import click

from pylightnix.cli.common import parse_ref, store_settings
from pylightnix.errors import RefError
from pylightnix.realize.buildlog import rreflog
from pylightnix.refs import is_rref
from pylightnix.store.query import drefrrefs, rrefbstart
from pylightnix.types import DRef, RRef


@click.command("log")
@click.argument("ref")
def log_cmd(ref: str) -> None:
    """Print what the build of REF printed (stdout and stderr).

    \b
    Examples:
      pylightnix log rref:...-train
      pylightnix log dref:...-train   # its most recent realization

    For a derivation, the log of its most recent realization.
    """
    S = store_settings()
    r = parse_ref(ref, S)
    if is_rref(r):
        rref = RRef(r)
    else:
        rrefs = drefrrefs(DRef(r), S)
        if not rrefs:
            raise RefError(f"{r} has no realization yet, so no build log", ref=r)
        rref = max(rrefs, key=lambda x: (rrefbstart(x, S), x))
    click.echo(rreflog(rref, S), nl=False)

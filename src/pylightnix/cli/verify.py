"""``pylightnix verify``: re-hash realizations and report damaged ones (exit 1 if any)."""

from __future__ import annotations

import dataclasses

import click

from pylightnix.cli.common import emit_json, parse_rref_arg, store_settings
from pylightnix.store.verify import verify


@click.command("verify")
@click.argument("refs", nargs=-1, metavar="[RREF]...")
@click.option(
    "--repair",
    type=click.Choice(["remove", "quarantine"]),
    help="Remove damaged realizations, or move them to <root>/quarantine.",
)
@click.option(
    "--no-rehash",
    "no_rehash",
    is_flag=True,
    help="Check folders, reserved files and modes, not the content hashes (fast).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(refs: tuple[str, ...], repair: str | None, no_rehash: bool, as_json: bool) -> None:
    """Check that realizations (default: all) still match their hashes.

    \b
    Examples:
      pylightnix verify
      pylightnix verify rref:...-train --json
      pylightnix verify --repair quarantine
      pylightnix verify --no-rehash

    Exits 1 when something is damaged, so scripts can rely on it.
    """
    S = store_settings()
    chosen = [parse_rref_arg(r, S) for r in refs] if refs else None
    res = verify(chosen, S, repair=repair, rehash=not no_rehash)  # type: ignore[arg-type]
    if as_json:
        emit_json({**dataclasses.asdict(res), "ok": res.ok})
    else:
        for d in res.damaged:
            act = f" ({d.action})" if d.action else ""
            click.echo(f"DAMAGED {d.rref}: {d.reason}{act}")
        click.echo(f"checked {len(res.checked)} realizations, {len(res.damaged)} damaged")
    if not res.ok:
        raise click.exceptions.Exit(1)

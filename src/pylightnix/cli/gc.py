"""``pylightnix gc``: delete what no root keeps alive (``--dry-run`` to only report)."""

from __future__ import annotations

import dataclasses

import click

from pylightnix.cli.common import emit_json, human_size, parse_ref, store_settings
from pylightnix.refs import is_rref
from pylightnix.store.gc import gc
from pylightnix.types import DRef, RRef


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--keep",
    multiple=True,
    metavar="REF",
    help="Also keep this DRef or RRef (and what it needs); repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def gc_cmd(dry_run: bool, keep: tuple[str, ...], as_json: bool) -> None:
    """Collect garbage: delete every derivation and realization that no root
    (result link, --keep) needs, then temporary leftovers.

    \b
    Examples:
      pylightnix gc --dry-run
      pylightnix gc --keep rref:...-report --json
    """
    S = store_settings()
    refs = [parse_ref(k, S) for k in keep]
    res = gc(
        S,
        keep_drefs=[DRef(r) for r in refs if not is_rref(r)],
        keep_rrefs=[RRef(r) for r in refs if is_rref(r)],
        dry_run=dry_run,
    )
    if as_json:
        emit_json(dataclasses.asdict(res))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"roots ({len(res.roots)}):")
    for root in res.roots:
        click.echo(f"  {root.ref}  ({root.why})")
    for p in res.stale_roots:
        click.echo(f"  stale root {p} (link gone)")
    for r in res.deleted_rrefs:
        click.echo(f"{verb} {r}")
    for d in res.deleted_drefs:
        click.echo(f"{verb} {d}")
    click.echo(
        f"{len(res.deleted_rrefs)} realizations, {len(res.deleted_drefs)} derivations, "
        f"{len(res.tmp_removed)} leftovers; {human_size(res.bytes_freed)} "
        f"{'would be freed' if dry_run else 'freed'}"
    )

"""``pylightnix gc``: delete what no root keeps alive (``--dry-run`` to only report)."""

from __future__ import annotations

import dataclasses
import sys

import click

from pylightnix.cli.common import emit_json, human_size, parse_age, parse_ref, store_settings
from pylightnix.refs import is_rref
from pylightnix.store.gc import GCResult, gc
from pylightnix.types import DRef, RRef

SHOW_AT_MOST = 20
"""How many objects the confirmation lists by name (the rest are counted)."""


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--keep",
    multiple=True,
    metavar="REF",
    help="Also keep this DRef or RRef (and what it needs); repeatable.",
)
@click.option(
    "--older-than",
    metavar="AGE",
    default=None,
    help="Delete only garbage stored longer ago than AGE (90s, 15m, 2h, 3d, 1w).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Keep the N most recently stored realizations of every derivation.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def gc_cmd(
    dry_run: bool,
    keep: tuple[str, ...],
    older_than: str | None,
    keep_last: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Collect garbage: delete every derivation and realization that no root
    (result link, --keep, a running process, the policies) needs, then
    temporary leftovers. On a terminal it first lists what it would delete
    and asks.

    \b
    Examples:
      pylightnix gc --dry-run
      pylightnix gc --older-than 7d --keep-last 2 --yes
      pylightnix gc --keep rref:...-report --json
    """
    S = store_settings()
    refs = [parse_ref(k, S) for k in keep]
    age = parse_age(older_than) if older_than is not None else None

    def collect(dry: bool) -> GCResult:
        return gc(
            S,
            keep_drefs=[DRef(r) for r in refs if not is_rref(r)],
            keep_rrefs=[RRef(r) for r in refs if is_rref(r)],
            dry_run=dry,
            older_than=age,
            keep_last=keep_last,
        )

    if not dry_run and not yes and sys.stdin.isatty():
        plan = collect(True)
        if not plan.deleted_rrefs and not plan.deleted_drefs and not plan.tmp_removed:
            click.echo("nothing to collect")
            return
        _show_plan(plan)
        if not click.confirm("delete them?", default=False):
            click.echo("nothing deleted")
            sys.exit(1)
    res = collect(dry_run)
    if as_json:
        emit_json(dataclasses.asdict(res))
        return
    verb = "would delete" if dry_run else "deleted"
    shown = [x for x in res.roots if x.why != "temproot"]
    click.echo(f"roots ({len(shown)}):")
    for root in shown:
        click.echo(f"  {root.ref}  ({root.why})")
    live = len(res.roots) - len(shown)
    if live:
        click.echo(f"  and {live} objects in use by running processes")
    for p in res.stale_roots:
        click.echo(f"  stale root {p} (link gone)")
    for r in res.deleted_rrefs:
        click.echo(f"{verb} {r}  {human_size(res.sizes.get(r, 0))}")
    for d in res.deleted_drefs:
        click.echo(f"{verb} {d}  {human_size(res.sizes.get(d, 0))}")
    click.echo(
        f"{len(res.deleted_rrefs)} realizations, {len(res.deleted_drefs)} derivations, "
        f"{len(res.tmp_removed)} leftovers; {human_size(res.bytes_freed)} "
        f"{'would be freed' if dry_run else 'freed'}"
    )


def _show_plan(plan: GCResult) -> None:
    """List what a collection would delete, largest first, and the total."""
    objs = sorted(plan.sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    click.echo("gc would delete:")
    for ref, size in objs[:SHOW_AT_MOST]:
        click.echo(f"  {human_size(size):>10}  {ref}")
    if len(objs) > SHOW_AT_MOST:
        rest = sum(size for _, size in objs[SHOW_AT_MOST:])
        click.echo(f"  {human_size(rest):>10}  and {len(objs) - SHOW_AT_MOST} more")
    click.echo(
        f"{len(plan.deleted_rrefs)} realizations, {len(plan.deleted_drefs)} derivations, "
        f"{len(plan.tmp_removed)} leftovers: {human_size(plan.bytes_freed)}"
    )

"""``pylightnix ls``: derivations with their realization count, latest build (and size)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import click

from pylightnix.cli.common import (
    emit_json_stream,
    fmt_time,
    human_size,
    newer_than,
    parse_age,
    store_settings,
)
from pylightnix.gcpause import library_work
from pylightnix.realize.failures import failed_rhashes
from pylightnix.refs import dref_name, parse_rref
from pylightnix.store.facts import dref_bstarts
from pylightnix.store.index import forget_index
from pylightnix.store.inspect import realization_sizes
from pylightnix.store.query import alldrefs, alldrefs_rrefs
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef


def derivation_rows(
    S: StorageSettings,
    name: str | None = None,
    newer: float | None = None,
    *,
    size: bool = False,
) -> Iterator[dict[str, Any]]:
    """One record per derivation matching ``name`` (a glob) and built within ``newer`` seconds.

    Records come one by one in (name, dref) order, each costing a listing of
    its derivation folder and its realizations' cached build times (see
    ``store/facts.py``). With ``size``, ``size`` is the bytes of its
    realizations' files (as :func:`du` counts them), which reads every file's
    size: asked for only.
    """
    for d, rrefs in alldrefs_rrefs(S, key=lambda d: (str(dref_name(d)), d)):
        n = str(dref_name(d))
        if name is not None and not fnmatch.fnmatchcase(n, name):
            continue
        latest = max(dref_bstarts(S, d, rrefs), default=None)
        if not newer_than(latest, newer):
            continue
        row: dict[str, Any] = {
            "dref": d,
            "name": n,
            "realizations": len(rrefs),
            "failed": _failed_count(S, d, rrefs),
            "latest_build": latest,
        }
        if size:
            row["size"] = sum(realization_sizes(rrefs, S).values())
        # Each index is read once here: keeping 100,000 of them cost memory and time.
        forget_index(S, d)
        yield row


def _failed_count(S: StorageSettings, d: DRef, rrefs: list[RRef]) -> int:
    """How many of ``rrefs`` are failed realizations (from the failed index, no stat each)."""
    failed = failed_rhashes(d, S)
    return sum(parse_rref(r)[0] in failed for r in rrefs) if failed else 0


@click.command("ls")
@click.option("--name", "name", metavar="GLOB", help="Only derivations whose name matches.")
@click.option("--newer", metavar="AGE", help="Only those built within AGE (30m, 2h, 3d, 1w).")
@click.option("--size", "size", is_flag=True, help="Add the bytes of each one's realizations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
def ls_cmd(name: str | None, newer: str | None, size: bool, as_json: bool) -> None:
    """List derivations: name, number of realizations (and how many failed), latest build
    time (and size).

    \b
    Examples:
      pylightnix ls
      pylightnix ls --name 'train*' --newer 3d --json
      pylightnix ls --size
    """
    age = parse_age(newer) if newer is not None else None
    S = store_settings()
    with library_work():
        _print_rows(S, derivation_rows(S, name, age, size=size), size, as_json)


def _print_rows(
    S: StorageSettings, rows: Iterator[dict[str, Any]], size: bool, as_json: bool
) -> None:
    if as_json:
        emit_json_stream(rows)
        return
    # Printed as the rows come: column widths fixed up front (names from the listing).
    width = max([4, *(len(str(dref_name(d))) for d in alldrefs(S))])
    head = f"{'NAME':<{width}}  {'REALIZATIONS':>12}  {'LATEST BUILD':<19}"
    click.echo(f"{head}  {'SIZE':>10}  DREF" if size else f"{head}  DREF")
    for r in rows:
        count = str(r["realizations"]) + (f" ({r['failed']} failed)" if r["failed"] else "")
        line = f"{r['name']:<{width}}  {count:>12}  {fmt_time(r['latest_build']):<19}"
        if size:
            line += f"  {human_size(r['size']):>10}"
        click.echo(f"{line}  {r['dref']}")

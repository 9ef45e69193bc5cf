"""``pylightnix ls``: derivations with their realization count, latest build and size."""

from __future__ import annotations

import fnmatch
from typing import Any

import click
from rich.table import Table

from pylightnix.cli.common import (
    emit_json,
    fmt_time,
    human_size,
    newer_than,
    parse_age,
    print_table,
    store_settings,
)
from pylightnix.realize.failures import is_failed
from pylightnix.refs import dref_name
from pylightnix.store.inspect import du
from pylightnix.store.query import alldrefs, drefrrefs, rrefbstart
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef


def derivation_rows(
    S: StorageSettings, name: str | None = None, newer: float | None = None
) -> list[dict[str, Any]]:
    """One record per derivation matching ``name`` (a glob) and built within ``newer`` seconds.

    ``size`` is the bytes of its realizations' files (as :func:`du` counts them).
    """
    sizes = du(S).rrefs
    rows: list[dict[str, Any]] = []
    for d in alldrefs(S):
        n = str(dref_name(d))
        if name is not None and not fnmatch.fnmatchcase(n, name):
            continue
        rrefs = drefrrefs(DRef(d), S)
        latest = max((rrefbstart(r, S) for r in rrefs), default=None)
        if not newer_than(latest, newer):
            continue
        rows.append(
            {
                "dref": d,
                "name": n,
                "realizations": len(rrefs),
                "failed": sum(is_failed(r, S) for r in rrefs),
                "latest_build": latest,
                "size": sum(sizes.get(r, 0) for r in rrefs),
            }
        )
    rows.sort(key=lambda x: (x["name"], x["dref"]))
    return rows


@click.command("ls")
@click.option("--name", "name", metavar="GLOB", help="Only derivations whose name matches.")
@click.option("--newer", metavar="AGE", help="Only those built within AGE (30m, 2h, 3d, 1w).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
def ls_cmd(name: str | None, newer: str | None, as_json: bool) -> None:
    """List derivations: name, number of realizations (and how many failed), latest build
    time, size.

    \b
    Examples:
      pylightnix ls
      pylightnix ls --name 'train*' --newer 3d --json
    """
    age = parse_age(newer) if newer is not None else None
    rows = derivation_rows(store_settings(), name, age)
    if as_json:
        emit_json(rows)
        return
    t = Table(box=None, pad_edge=False)
    for col, just in (("NAME", "left"), ("REALIZATIONS", "right"), ("LATEST BUILD", "left")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    t.add_column("SIZE", justify="right", no_wrap=True)
    t.add_column("DREF", no_wrap=True)
    for r in rows:
        t.add_row(
            r["name"],
            str(r["realizations"]) + (f" ({r['failed']} failed)" if r["failed"] else ""),
            fmt_time(r["latest_build"]),
            human_size(r["size"]),
            r["dref"],
        )
    print_table(t)

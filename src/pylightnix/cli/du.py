"""``pylightnix du``: disk usage of realizations, largest first, with closure sizes."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from pylightnix.cli.common import console, emit_json, human_size, print_table, store_settings
from pylightnix.refs import rref_name
from pylightnix.store.inspect import closure_sizes, du
from pylightnix.store.settings import StorageSettings


def usage_rows(S: StorageSettings) -> tuple[int, list[dict[str, Any]]]:
    """Total bytes and one record per realization (size, closure size), largest first."""
    u = du(S)
    closure = closure_sizes(u, S)
    rows: list[dict[str, Any]] = [
        {"rref": r, "name": str(rref_name(r)), "size": size, "closure_size": closure[r]}
        for r, size in u.rrefs.items()
    ]
    rows.sort(key=lambda x: (-x["size"], x["rref"]))
    return u.total, rows


@click.command("du")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
def du_cmd(as_json: bool) -> None:
    """Disk usage of every realization, largest first; the closure size adds
    everything it was built from.

    \b
    Examples:
      pylightnix du
      pylightnix du --json
    """
    total, rows = usage_rows(store_settings())
    if as_json:
        emit_json({"total": total, "realizations": rows})
        return
    t = Table(box=None, pad_edge=False)
    t.add_column("SIZE", justify="right", no_wrap=True)
    t.add_column("CLOSURE", justify="right", no_wrap=True)
    t.add_column("NAME", no_wrap=True)
    t.add_column("RREF", no_wrap=True)
    for r in rows:
        t.add_row(human_size(r["size"]), human_size(r["closure_size"]), r["name"], r["rref"])
    print_table(t)
    c = console()
    c.print(f"total: {human_size(total)}", highlight=False)

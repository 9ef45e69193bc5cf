"""``pylightnix diff A B``: how two refs differ in config and (for realizations) files."""

from __future__ import annotations

from typing import Any

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.refs import is_rref
from pylightnix.store.inspect import files_diff, refdiff
from pylightnix.types import RRef


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record.")
def diff_cmd(a: str, b: str, as_json: bool) -> None:
    """Compare the configs of A and B (DRefs or RRefs) and, for two realizations,
    their files.

    \b
    Examples:
      pylightnix diff rref:...-train rref:...-train
      pylightnix diff dref:...-train dref:...-train --json
    """
    S = store_settings()
    ra, rb = parse_ref(a, S), parse_ref(b, S)
    cd = refdiff(ra, rb, S)
    rec: dict[str, Any] = {
        "a": ra,
        "b": rb,
        "config": {
            "added": {".".join(k): v for k, v in cd.added.items()},
            "removed": {".".join(k): v for k, v in cd.removed.items()},
            "changed": {".".join(k): list(v) for k, v in cd.changed.items()},
        },
    }
    if is_rref(ra) and is_rref(rb):
        fd = files_diff(RRef(ra), RRef(rb), S)
        rec["files"] = {
            "only_in_a": list(fd.only_in_a),
            "only_in_b": list(fd.only_in_b),
            "changed": list(fd.changed),
        }
    if as_json:
        emit_json(rec)
        return
    click.echo(f"--- {ra}\n+++ {rb}")
    click.echo("config:")
    for line in str(cd).splitlines():
        click.echo("  " + line)
    if "files" in rec:
        f = rec["files"]
        click.echo("files:")
        lines = [f"  - {p}" for p in f["only_in_a"]] + [f"  + {p}" for p in f["only_in_b"]]
        lines += [f"  ~ {p}" for p in f["changed"]]
        click.echo("\n".join(sorted(lines, key=lambda x: x[4:])) if lines else "  (same)")

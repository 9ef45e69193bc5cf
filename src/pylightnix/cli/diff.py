"""``pylightnix diff A B``: how two refs differ in config and (for realizations) files."""

from __future__ import annotations

import os
from typing import Any

import click

from pylightnix.cli.common import emit_json, parse_ref, store_settings
from pylightnix.hashing import hash_file
from pylightnix.refs import is_rref
from pylightnix.store.inspect import refdiff
from pylightnix.store.layout import RESERVED
from pylightnix.store.query import rref2path
from pylightnix.store.settings import StorageSettings
from pylightnix.types import RRef


def _files(root: str) -> dict[str, str]:
    """Relative path -> ``kind:digest`` of every file/link under a realization."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and RESERVED in dirnames:
            dirnames.remove(RESERVED)
        for n in filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = "file:" + hash_file(p).hex()
    return out


def files_diff(a: RRef, b: RRef, S: StorageSettings) -> dict[str, list[str]]:
    """Files only in ``a``, only in ``b``, and in both with other content."""
    fa, fb = _files(rref2path(a, S)), _files(rref2path(b, S))
    return {
        "only_in_a": sorted(set(fa) - set(fb)),
        "only_in_b": sorted(set(fb) - set(fa)),
        "changed": sorted(k for k in set(fa) & set(fb) if fa[k] != fb[k]),
    }


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
        rec["files"] = files_diff(RRef(ra), RRef(rb), S)
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

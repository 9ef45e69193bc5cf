"""``pylightnix show REF``: config, context, build times and files of a ref."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from pylightnix.cli.common import (
    console,
    emit_json,
    fmt_time,
    human_size,
    parse_ref,
    store_settings,
)
from pylightnix.config import config_dict
from pylightnix.realize.buildlog import rreflog_path, rreflog_tail
from pylightnix.realize.failures import rref_failure
from pylightnix.refs import dref_name, is_rref, rref2dref
from pylightnix.store.inspect import rref_files
from pylightnix.store.query import drefcfg_, drefrrefs, rref2path, rrefctx, rrefmeta
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

LOG_TAIL = 5
"""Log lines shown for a failed realization."""


def describe(ref: DRef | RRef, S: StorageSettings) -> dict[str, Any]:
    """The record ``show`` prints for a derivation or realization."""
    if is_rref(ref):
        r = RRef(ref)
        d = rref2dref(r)
        meta = rrefmeta(r, S)
        path = rref2path(r, S)
        return {
            "rref": r,
            "dref": d,
            "name": str(dref_name(d)),
            "path": path,
            "config": config_dict(drefcfg_(d, S)),
            "context": dict(sorted(rrefctx(r, S).items())),
            "build_start": meta.get("build_start"),
            "build_stop": meta.get("build_stop"),
            "host": meta.get("host"),
            "has_log": os.path.exists(rreflog_path(r, S)),
            "files": [{"path": f.path, "size": f.size} for f in rref_files(r, S)],
            **_status(r, S),
        }
    d = DRef(ref)
    return {
        "dref": d,
        "name": str(dref_name(d)),
        "config": config_dict(drefcfg_(d, S)),
        "realizations": [
            {"rref": x, "build_start": rrefmeta(x, S).get("build_start"), **_status(x, S)}
            for x in drefrrefs(d, S)
        ],
    }


def _status(r: RRef, S: StorageSettings) -> dict[str, Any]:
    """``status`` ("ok"/"failed"); for a failed one also its ``error`` and ``log_tail``."""
    f = rref_failure(r, S)
    if f is None:
        return {"status": "ok"}
    return {
        "status": "failed",
        "error": f"{f.error}: {f.message}",
        "log_tail": rreflog_tail(r, S, LOG_TAIL),
    }


@click.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record.")
def show_cmd(ref: str, as_json: bool) -> None:
    """Show a derivation (config, realizations) or a realization (config,
    context, build times, files).

    \b
    Examples:
      pylightnix show rref:...-train
      pylightnix show dref:...-train --json
    """
    S = store_settings()
    rec = describe(parse_ref(ref, S), S)
    if as_json:
        emit_json(rec)
        return
    c = console()
    title = rec.get("rref") or rec["dref"]
    c.print(f"[bold]{title}[/bold]", highlight=False)
    c.print(f"name:    {rec['name']}", highlight=False)
    if "rref" in rec:
        c.print(f"dref:    {rec['dref']}", highlight=False)
        c.print(f"path:    {rec['path']}", highlight=False)
        c.print(
            f"built:   {fmt_time(rec['build_start'])} .. {fmt_time(rec['build_stop'])}"
            f" on {rec['host']}",
            highlight=False,
        )
        if rec["status"] == "failed":
            c.print(f"status:  FAILED {rec['error']}", highlight=False, markup=False)
            for line in rec["log_tail"]:
                c.print(f"  | {line}", highlight=False, markup=False)
    c.print("config:", highlight=False)
    for line in json.dumps(rec["config"], indent=2, sort_keys=True).splitlines():
        c.print("  " + line, highlight=False, markup=False)
    if "rref" in rec:
        c.print("context:", highlight=False)
        if not rec["context"]:
            c.print("  (no dependencies)", highlight=False)
        for k, v in rec["context"].items():
            c.print(f"  {k} -> {', '.join(v)}", highlight=False, markup=False)
        c.print(f"files:   ({len(rec['files'])})", highlight=False)
        for f in rec["files"]:
            c.print(f"  {human_size(f['size']):>10}  {f['path']}", highlight=False, markup=False)
        if rec["has_log"]:
            c.print(f"log:     pylightnix log {rec['rref']}", highlight=False)
    else:
        c.print(f"realizations: ({len(rec['realizations'])})", highlight=False)
        for x in rec["realizations"]:
            bad = f"  FAILED {x['error']}" if x["status"] == "failed" else ""
            c.print(
                f"  {x['rref']}  built {fmt_time(x['build_start'])}{bad}",
                highlight=False,
                markup=False,
            )

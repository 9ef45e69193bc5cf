"""``pylightnix runs NAME``: the runs of a stage side by side, parameters and metrics."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

import click
from rich.table import Table

from pylightnix.cli.common import console, emit_json, fmt_time, print_table, store_settings
from pylightnix.errors import OptionError, RefError
from pylightnix.realize.buildlog import rreflog_tail
from pylightnix.refs import dref_name, is_dref, rref_hash
from pylightnix.runs import Run, metric_keys, param_keys, runs, sort_runs
from pylightnix.store.query import alldrefs
from pylightnix.store.settings import StorageSettings

TAIL = 5
"""Log lines shown under a failed run."""


def _pick(kind: str, asked: tuple[str, ...], known: list[str]) -> list[str]:
    missing = [k for k in asked if k not in known]
    if missing:
        raise OptionError(
            f"no run has a {kind} {missing[0]!r} (its {kind}s: {', '.join(known) or 'none'})",
            option=kind,
            value=missing[0],
        )
    return list(asked)


def _fmt_param(v: Any) -> str:
    if v is None:
        return "-"
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def _fmt_metric(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _no_runs(name: str, S: StorageSettings) -> RefError:
    names = sorted({str(dref_name(d)) for d in alldrefs(S)})
    return RefError(
        f"no runs of {name!r} in the store at {S.storage!r} (stage names there: "
        f"{', '.join(names) or 'none'}): realize it first, or check the name with "
        "`pylightnix ls`",
        ref=name,
    )


def _record(r: Run, S: StorageSettings) -> dict[str, Any]:
    rec = r.to_json()
    if r.status == "failed":
        rec["log_tail"] = rreflog_tail(r.rref, S, TAIL)
    return rec


@click.command("runs")
@click.argument("name")
@click.option("--sort", "sort_key", metavar="KEY", help="Order by a metric (or parameter).")
@click.option("--ascending", is_flag=True, help="With --sort: lowest first (default: highest).")
@click.option("--param", "params", multiple=True, metavar="KEY", help="Parameter columns to show.")
@click.option("--metric", "metrics", multiple=True, metavar="KEY", help="Metric columns to show.")
@click.option(
    "--metrics-file",
    metavar="FILE",
    help="JSON file of numbers to read as metrics when a run has no metrics.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per run).")
def runs_cmd(
    name: str,
    sort_key: str | None,
    ascending: bool,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    metrics_file: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Compare the runs (realizations, failed ones too) of the stage NAME (or of one
    DRef): parameters that differ, metrics, status; `*` marks the runs its matcher picks.

    \b
    Examples:
      pylightnix runs train
      pylightnix runs train --sort accuracy --param lr --metric accuracy
      pylightnix runs train --json
      pylightnix runs dref:...-train --csv > runs.csv

    Metrics come from each run's metrics.json, else the file its match_best
    ranks by, else --metrics-file.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other: pick one")
    S = store_settings()
    rs = runs(name, S=S, metrics_file=metrics_file)
    if not rs and not is_dref(name):
        raise _no_runs(name, S)
    pcols = _pick("parameter", params, param_keys(rs)) if params else param_keys(rs, varying=True)
    mcols = _pick("metric", metrics, metric_keys(rs)) if metrics else metric_keys(rs)
    if sort_key is not None:
        rs = sort_runs(rs, sort_key, descending=not ascending)
    if as_json:
        emit_json([_record(r, S) for r in rs])
        return
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        fixed = ["rref", "name", "status", "chosen", "build_start", "duration", "error"]
        w.writerow(fixed + [f"params.{k}" for k in pcols] + [f"metrics.{k}" for k in mcols])
        for r in rs:
            w.writerow(
                [r.rref, r.name, r.status, r.chosen, r.build_start, r.duration, r.error or ""]
                + [r.params.get(k, "") for k in pcols]
                + [r.metrics.get(k, "") for k in mcols]
            )
        return
    _table(rs, pcols, mcols, S)


def _table(rs: list[Run], pcols: list[str], mcols: list[str], S: StorageSettings) -> None:
    t = Table(box=None, pad_edge=False)
    t.add_column("", no_wrap=True)
    t.add_column("RUN", no_wrap=True)
    t.add_column("BUILT", no_wrap=True)
    t.add_column("SECONDS", justify="right", no_wrap=True)
    t.add_column("STATUS", no_wrap=True)
    for k in pcols:
        t.add_column(k, no_wrap=True)
    for k in mcols:
        t.add_column(k, justify="right", no_wrap=True)
    for r in rs:
        t.add_row(
            "*" if r.chosen else "",
            str(rref_hash(r.rref))[:8],
            fmt_time(r.build_start),
            "-" if r.duration is None else f"{r.duration:.1f}",
            r.status,
            *[_fmt_param(r.params.get(k)) for k in pcols],
            *[_fmt_metric(r.metrics.get(k)) for k in mcols],
        )
    print_table(t)
    failed = [r for r in rs if r.status == "failed"]
    if not failed:
        return
    c = console()
    c.print(f"\n{len(failed)} failed:", highlight=False)
    for r in failed:
        c.print(f"  {r.rref}  {r.error}", highlight=False, markup=False)
        for line in rreflog_tail(r.rref, S, TAIL):
            c.print(f"    | {line}", highlight=False, markup=False)
    c.print("  (pylightnix log RREF shows a whole log)", highlight=False)

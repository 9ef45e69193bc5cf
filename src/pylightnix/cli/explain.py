"""``pylightnix explain STAGE``: why each stage would be reused or built (builds nothing)."""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from pylightnix.cli.common import emit_json, print_table, store_settings
from pylightnix.cli.stageref import arg_option, instantiate_ref, set_option, stage_argument
from pylightnix.realize.explain import explain


@click.command("explain")
@stage_argument
@arg_option
@set_option
@click.option("--force-rebuild", is_flag=True, help="Explain as if every stage were forced.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
def explain_cmd(
    stage: str, args: tuple[str, ...], sets: tuple[str, ...], force_rebuild: bool, as_json: bool
) -> None:
    """For each stage of STAGE's closure, say whether realize would reuse or
    build it, and why.

    \b
    Examples:
      pylightnix explain pipeline.py:report
      pylightnix explain pipeline.py:report --arg lr=0.02 --json
      pylightnix explain pipeline.py:report --set data.n=300
    """
    S = store_settings()
    exps = explain(instantiate_ref(stage, args, S, sets), force_rebuild=force_rebuild)
    if as_json:
        emit_json([dataclasses.asdict(e) for e in exps])
        return
    t = Table(box=None, pad_edge=False)
    t.add_column("STAGE", no_wrap=True)
    t.add_column("DECISION", no_wrap=True)
    t.add_column("WHY")
    for e in exps:
        t.add_row(e.name, e.decision, e.reason)
    print_table(t)

"""``pylightnix realize STAGE``: instantiate and realize a stage, showing progress."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from pylightnix.cli.common import emit_json, store_settings
from pylightnix.cli.progress import ProgressView, stage_labels
from pylightnix.cli.stageref import arg_option, instantiate_ref, set_option, stage_argument
from pylightnix.progress import progress_hook
from pylightnix.realize.buildlog import show_log_default
from pylightnix.realize.dask import dask_client
from pylightnix.realize.engine import realize
from pylightnix.realize.explain import explain, report_explanations
from pylightnix.realize.failures import realizeE
from pylightnix.refs import dref_name
from pylightnix.store.links import linkrref


@click.command("realize")
@stage_argument
@arg_option
@set_option
@click.option("--force-rebuild", is_flag=True, help="Build every stage anew.")
@click.option("--dry-run", is_flag=True, help="Decide only; build nothing.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--keep-failed", is_flag=True, help="Keep the temporary folder of a failed build.")
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    help="Build on a Dask cluster: a scheduler address (tcp://HOST:8786), or local:N "
    "for N local worker processes. Needs pylightnix[dask] and a store the workers see, "
    "or --remote.",
)
@click.option(
    "--remote",
    "remote_url",
    metavar="URL",
    help="With --dask, when workers do not share the store: a remote cache (folder, "
    "s3://...) through which they get inputs and return outputs; each worker builds "
    "in its own store ($PYLIGHTNIX_ROOT on the worker).",
)
@click.option(
    "--show-log",
    is_flag=True,
    default=None,
    help="Show what builds print, live (default: $PYLIGHTNIX_SHOW_LOG).",
)
@click.option(
    "--explain", "do_explain", is_flag=True, help="First say why each stage is reused or built."
)
@click.option("--progress/--no-progress", default=True, help="Show progress on stderr.")
@click.option(
    "--out-link",
    "-o",
    metavar="PATH",
    help="Make a result link PATH to the target's realization (a GC root); "
    "more realizations get PATH-2, PATH-3...",
)
@click.option(
    "--keep-going",
    "-k",
    is_flag=True,
    help="Record failed builds as failed runs and go on with the rest (realizeE); "
    "exit code 1 if any failed.",
)
@click.option(
    "--substituter",
    "substituters",
    multiple=True,
    metavar="URL",
    help="A remote cache to fetch stages from instead of building; repeatable "
    "(default: $PYLIGHTNIX_SUBSTITUTERS).",
)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="NAME:KEY",
    help="Substitute only claims signed by this key; repeatable "
    "(default: $PYLIGHTNIX_TRUSTED_KEYS).",
)
@click.option("--push", "push_to", metavar="URL", help="Push what is built to this remote cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the chosen RRefs as JSON.")
def realize_cmd(
    stage: str,
    args: tuple[str, ...],
    sets: tuple[str, ...],
    force_rebuild: bool,
    dry_run: bool,
    jobs: int,
    keep_failed: bool,
    dask_address: str | None,
    remote_url: str | None,
    show_log: bool | None,
    do_explain: bool,
    progress: bool,
    out_link: str | None,
    keep_going: bool,
    substituters: tuple[str, ...],
    trusted: tuple[str, ...],
    push_to: str | None,
    as_json: bool,
) -> None:
    """Realize STAGE (module:function or path/to/file.py:function) and print the
    RRefs of its targets, one per line.

    \b
    Examples:
      pylightnix realize pipeline.py:report
      pylightnix realize mypkg.stages:train --arg lr=0.01 --jobs 2 --json
      pylightnix realize pipeline.py:report --set data.n=300   # a nested stage's key
      pylightnix realize pipeline.py:report --show-log   # builds' output live
      pylightnix realize sweep.py:sweep --keep-going     # failed runs recorded
      pylightnix realize pipeline.py:sweep --dask local:4
      pylightnix realize pipeline.py:sweep --dask tcp://scheduler:8786
      pylightnix realize pipeline.py:sweep --dask tcp://scheduler:8786 --remote s3://b/cache
      pylightnix realize pipeline.py:report --substituter s3://team-cache/plx

    Progress goes to stderr: a live display on a terminal, plain lines
    otherwise (and always with --show-log, whose output would garble it).
    """
    remote_options = substituters or push_to or dask_address
    if keep_going and (dry_run or jobs > 1 or keep_failed or show_log or remote_options):
        raise click.UsageError(
            "--keep-going builds one stage at a time and records failures in the store: "
            "drop --dry-run, --jobs, --keep-failed, --show-log, --substituter, --push and --dask"
        )
    if remote_url is not None and dask_address is None:
        raise click.UsageError("--remote needs --dask: it is how Dask workers exchange builds")
    S = store_settings()
    clo = instantiate_ref(stage, args, S, sets)
    show = show_log_default() if show_log is None else show_log
    view = None
    if progress:
        # One explain pass gives the display its "to build" count and, with
        # --explain, the explanations: the engine is not asked to explain again.
        exps = explain(clo, force_rebuild=force_rebuild)
        view = ProgressView(
            live=False if show else None,
            to_build=sum(e.decision == "build" for e in exps),
            labels=stage_labels(clo[1].derivations),
        )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_results_stdout())
        if view is not None:
            stack.enter_context(view)
        if view is not None and do_explain:
            with progress_hook(view):
                report_explanations(exps)
        if keep_going:
            if do_explain and view is None:
                report_explanations(explain(clo, force_rebuild=force_rebuild))
            _, c, ctx, failures = realizeE(
                clo, force_rebuild=force_rebuild, progress=view if view is not None else False
            )
        else:
            failures = {}
            client = stack.enter_context(dask_client(dask_address)) if dask_address else None
            _, c, ctx = realize(
                clo,
                force_rebuild=force_rebuild,
                dry_run=dry_run,
                jobs=jobs,
                executor=client,
                remote=remote_url,
                keep_failed=keep_failed,
                show_log=show,
                explain=do_explain and view is None,
                progress=view if view is not None else False,
                substituters=list(substituters) or None,
                trusted_keys=list(trusted) or None,
                push_to=push_to,
            )
    targets = {t: ctx.get(t) for t in c.targets}
    if out_link is not None:
        chosen = [r for rs in targets.values() for r in rs or []]
        for i, r in enumerate(chosen):
            name = os.path.basename(out_link) + (f"-{i + 1}" if i else "")
            linkrref(r, os.path.dirname(out_link) or ".", name, S)
    if as_json:
        rec: dict[str, Any] = {"targets": targets, "context": ctx}
        if keep_going:
            rec["failed"] = {d: f"{f.error}: {f.message}" for d, f in failures.items()}
        emit_json(rec)
    else:
        for t, rrefs in targets.items():
            if rrefs is None:
                click.echo(f"{t} (would be built)")
            else:
                for r in rrefs:
                    click.echo(r + ("  FAILED" if t in failures else ""))
    if failures:
        names = sorted({str(dref_name(d)) for d in failures})
        raise click.ClickException(
            f"{len(failures)} stage(s) failed and were recorded as failed runs: see "
            + ", ".join(f"`pylightnix runs {n}`" for n in names)
        )


@contextlib.contextmanager
def _results_stdout() -> Iterator[None]:
    """While realizing, point fd 1 at stderr, so that stdout carries only the results.

    Build output is captured into build logs, but not all of it can be: with
    ``--jobs`` > 1 the output of subprocesses goes to the inherited
    descriptors (see :mod:`pylightnix.realize.buildlog`), and ``--show-log``
    shows it live. Either way it belongs with the progress on stderr, never
    mixed into the RRefs or JSON a script reads from stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)

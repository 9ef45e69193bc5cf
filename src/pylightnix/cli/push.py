"""``pylightnix push URL REF...``: send closures to a remote cache."""

from __future__ import annotations

import contextlib

import click

from pylightnix.cli.common import (
    emit_json,
    human_size,
    parse_rref_arg,
    remote_option,
    remote_options,
    store_settings,
)
from pylightnix.cli.progress import ProgressView
from pylightnix.progress import progress_hook
from pylightnix.remote import open_remote, push


@click.command("push")
@click.argument("url")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("--sign", "sign", metavar="FILE", help="Sign each claim with this secret key file.")
@click.option(
    "--compression",
    type=click.Choice(["auto", "gzip", "none"]),
    default="auto",
    show_default=True,
    help="Archive compression (auto: gzip where a sample of the files compresses).",
)
@remote_option
@click.option("--progress/--no-progress", default=True, help="Show byte progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the transfer record as JSON.")
def push_cmd(
    url: str,
    refs: tuple[str, ...],
    sign: str | None,
    compression: str,
    options: tuple[str, ...],
    progress: bool,
    as_json: bool,
) -> None:
    """Push the realizations REF (RRefs, store paths or result links) and
    everything they were built from to the remote cache URL (a folder,
    s3://bucket/prefix, or any fsspec URL), skipping what it already holds.

    \b
    Examples:
      pylightnix push /mnt/cache rref:...-report
      pylightnix push s3://team-cache/plx ./result --sign ~/.plx-key.sec
      pylightnix push s3://c/plx ./result --option endpoint_url=http://127.0.0.1:9000 --json
    """
    S = store_settings()
    rrefs = [parse_rref_arg(r, S) for r in refs]
    remote = open_remote(url, **remote_options(options))
    view = ProgressView() if progress else None
    with view if view is not None else contextlib.nullcontext(), progress_hook(view):
        res = push(rrefs, remote, S=S, sign_with=sign, compression=compression)
    if as_json:
        emit_json(res.as_json())
        return
    click.echo(
        f"pushed {len(res.transferred)} realizations ({human_size(res.nbytes)}) and "
        f"{len(res.configs)} configs to {res.remote} in {res.seconds:.1f}s; "
        f"{len(res.skipped)} already there",
        err=True,
    )
    for r in res.targets:
        click.echo(r)

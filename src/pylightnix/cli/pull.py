"""``pylightnix pull URL REF...``: fetch closures from a remote cache."""

from __future__ import annotations

import contextlib
import os

import click

from pylightnix.cli.common import (
    emit_json,
    human_size,
    remote_option,
    remote_options,
    store_settings,
)
from pylightnix.cli.progress import ProgressView
from pylightnix.progress import progress_hook
from pylightnix.remote import open_remote, pull
from pylightnix.remote.substitute import ENV_TRUSTED_KEYS
from pylightnix.types import RRef


@click.command("pull")
@click.argument("url")
@click.argument("refs", nargs=-1, required=True, metavar="RREF...")
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="NAME:KEY",
    help="Accept only claims signed by this public key; repeatable "
    "(default: $PYLIGHTNIX_TRUSTED_KEYS, else accept any claim whose objects hash right).",
)
@remote_option
@click.option("--progress/--no-progress", default=True, help="Show byte progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the transfer record as JSON.")
def pull_cmd(
    url: str,
    refs: tuple[str, ...],
    trusted: tuple[str, ...],
    options: tuple[str, ...],
    progress: bool,
    as_json: bool,
) -> None:
    """Pull the realizations RREF and everything they were built from out of
    the remote cache URL into the store. Every object is checked against its
    hash before it becomes visible; on any error the store is unchanged.

    \b
    Examples:
      pylightnix pull /mnt/cache rref:...-report
      pylightnix pull https://cache.example.org/plx rref:... --trusted-key ci-1:Base64...=
    """
    S = store_settings()
    keys = list(trusted) or os.environ.get(ENV_TRUSTED_KEYS, "").split() or None
    remote = open_remote(url, **remote_options(options))
    view = ProgressView() if progress else None
    with view if view is not None else contextlib.nullcontext(), progress_hook(view):
        res = pull([RRef(r) for r in refs], remote, S=S, trusted_keys=keys)
    if as_json:
        emit_json(res.as_json())
        return
    click.echo(
        f"pulled {len(res.transferred)} realizations ({human_size(res.nbytes)}) from "
        f"{res.remote} in {res.seconds:.1f}s; {len(res.skipped)} already here",
        err=True,
    )
    for r in res.targets:
        click.echo(r)

"""``pylightnix cat REF PATH``: print a file of a realization (bytes as stored)."""

from __future__ import annotations

import os
import shutil
import sys

import click

from pylightnix.cli.common import parse_ref, store_settings
from pylightnix.errors import RefError
from pylightnix.store.inspect import escape_problem, refpath2path


@click.command("cat")
@click.argument("ref")
@click.argument("path")
def cat_cmd(ref: str, path: str) -> None:
    """Print the file PATH of the realization REF (a DRef means its only realization).

    \b
    Examples:
      pylightnix cat rref:...-train metrics/accuracy.txt
      pylightnix cat dref:...-train model.bin > model.bin   # its only realization
    """
    S = store_settings()
    r = parse_ref(ref, S)
    base = refpath2path(r, None, S, who="cat")
    items = [x for x in path.split("/") if x]
    p = os.path.join(base, *items)
    # Links may lead to other files of the store, never out of it.
    why = escape_problem(base, os.path.join(*items) if items else "", S)
    if why is None and not os.path.isfile(p):
        why = "is not a file there"
    if why is not None:
        raise RefError(f"{path!r} {why} ({r}): list its files with `pylightnix show {r}`", ref=r)
    with open(p, "rb") as f:
        sys.stdout.flush()
        shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()

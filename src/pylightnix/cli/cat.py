"""``pylightnix cat REF PATH``: print a file of a realization (bytes as stored)."""

from __future__ import annotations

import os
import shutil
import sys

import click

from pylightnix.cli.common import parse_ref, store_settings
from pylightnix.errors import RefError
from pylightnix.store.inspect import refpath2path


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
    p = os.path.join(base, *[x for x in path.split("/") if x])
    inside = os.path.realpath(p).startswith(os.path.realpath(base) + os.sep)
    if not inside or not os.path.isfile(p):
        why = "is outside the realization" if not inside else "is not a file there"
        raise RefError(f"{path!r} {why} ({r}): list its files with `pylightnix show {r}`", ref=r)
    with open(p, "rb") as f:
        sys.stdout.flush()
        shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()

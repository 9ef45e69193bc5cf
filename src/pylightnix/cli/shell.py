"""``pylightnix shell REF``: open ``$SHELL`` in the folder of a ref."""

from __future__ import annotations

import sys

import click

from pylightnix.cli.common import parse_ref, store_settings
from pylightnix.store.inspect import shellref


@click.command("shell")
@click.argument("ref")
def shell_cmd(ref: str) -> None:
    """Run $SHELL (else /bin/sh) in the folder of REF; exit with the shell's code.

    \b
    Examples:
      pylightnix shell rref:...-train
      SHELL=/bin/bash pylightnix shell dref:...-train
    """
    S = store_settings()
    code = shellref(parse_ref(ref, S), S)
    sys.exit(code)

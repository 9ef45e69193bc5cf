"""The ``pylightnix`` command group: global options, error handling, exit codes.

Exit codes: 0 success, 1 error (one line on stderr, the traceback only with
``--debug``), 2 usage error (click's own report).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from pylightnix.cli.common import CliState
from pylightnix.errors import PylightnixError

# (module, command function name): one module per command (--help lists them sorted).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("init", "init_cmd"),
    ("realize", "realize_cmd"),
    ("explain", "explain_cmd"),
    ("ls", "ls_cmd"),
    ("show", "show_cmd"),
    ("tree", "tree_cmd"),
    ("referrers", "referrers_cmd"),
    ("cat", "cat_cmd"),
    ("du", "du_cmd"),
    ("diff", "diff_cmd"),
    ("find", "find_cmd"),
    ("log", "log_cmd"),
    ("graph", "graph_cmd"),
    ("shell", "shell_cmd"),
    ("rm", "rm_cmd"),
    ("gc", "gc_cmd"),
    ("verify", "verify_cmd"),
    ("export", "export_cmd"),
    ("import_", "import_cmd"),
    ("migrate", "migrate_cmd"),
)


class _Group(click.Group):
    """Turns library errors into one-line messages with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except (PylightnixError, OSError) as e:
            if _debug(ctx):
                raise
            raise click.ClickException(_one_line(e)) from None
        except Exception as e:
            if _debug(ctx):
                raise
            raise click.ClickException(
                f"internal error: {type(e).__name__}: {_one_line(e)} "
                "(run with --debug for the traceback)"
            ) from None


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(CliState)
    return obj is not None and obj.debug


def _one_line(e: BaseException) -> str:
    msg = " ".join(x.strip() for x in str(e).strip().splitlines()) or type(e).__name__
    # Notes carry what the user needs next (e.g. the tail of a failed build's log).
    notes = getattr(e, "__notes__", None) or []
    return "\n".join([msg, *notes])


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--store",
    "root",
    metavar="PATH",
    envvar="PYLIGHTNIX_ROOT",
    help="Store root folder (default: $PYLIGHTNIX_ROOT, else ~/_pylightnix).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="pylightnix-ng", prog_name="pylightnix")
@click.pass_context
def cli(ctx: click.Context, root: str | None, debug: bool) -> None:
    """Manage a pylightnix store: realize stages, inspect, collect garbage.

    \b
    Examples:
      pylightnix --store ./plx init
      pylightnix realize pipeline.py:report
      pylightnix ls --newer 2h --json
      pylightnix gc --dry-run
    """
    ctx.obj = CliState(root or None, debug)


def _load_commands() -> None:
    for mod, fn in COMMANDS:
        cli.add_command(getattr(importlib.import_module(f"pylightnix.cli.{mod}"), fn))


_load_commands()


def run(argv: Sequence[str] | None = None) -> None:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="pylightnix")
    except BrokenPipeError:
        # The reader went away (`pylightnix find | head -1`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)

"""The ``pylightnix`` command group: global options, error handling, exit codes.

Exit codes: 0 success, 1 error (one line on stderr, the traceback only with
``--debug``), 2 usage error (click's own report).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import click

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
    ("runs", "runs_cmd"),
    ("graph", "graph_cmd"),
    ("shell", "shell_cmd"),
    ("rm", "rm_cmd"),
    ("gc", "gc_cmd"),
    ("verify", "verify_cmd"),
    ("export", "export_cmd"),
    ("import_", "import_cmd"),
    ("ui", "ui_cmd"),
    ("push", "push_cmd"),
    ("pull", "pull_cmd"),
    ("key", "key_cmd"),
    ("migrate", "migrate_cmd"),
    ("upgrade", "upgrade_cmd"),
)

# Short help of each command module, so `pylightnix --help` lists the commands
# without importing them (start-up, issue 15); tests/cli/test_app.py checks it
# against each command's docstring. A module missing here is imported for its help.
SHORT_HELP: dict[str, str] = {
    "init": "Create the store (nothing happens if it exists already).",
    "realize": (
        "Realize STAGE (module:function or path/to/file.py:function) and print the RRefs "
        "of its targets, one per line."
    ),
    "explain": (
        "For each stage of STAGE's closure, say whether realize would reuse or build it, and why."
    ),
    "ls": (
        "List derivations: name, number of realizations (and how many failed), latest "
        "build time (and size)."
    ),
    "show": (
        "Show a derivation (config, realizations) or a realization (config, context, "
        "build times, files)."
    ),
    "tree": "Show what REF depends on, transitively, as a tree.",
    "referrers": (
        "List what depends directly on REF: realizations built from a realization, "
        "derivations whose config mentions a derivation."
    ),
    "cat": "Print the file PATH of the realization REF (a DRef means its only realization).",
    "du": (
        "Disk usage of every realization, largest first; the closure size adds everything"
        " it was built from."
    ),
    "diff": (
        "Compare the configs of A and B (DRefs or RRefs) and, for two realizations, their files."
    ),
    "find": (
        "List realizations, oldest build first, filtered by name, age and status. Failed "
        "ones are marked FAILED with their error."
    ),
    "log": "Print what the build of REF printed (stdout and stderr).",
    "runs": (
        "Compare the runs (realizations, failed ones too) of the stage NAME (or of one "
        "DRef): parameters that differ, metrics, status; `*` marks the runs its matcher "
        "picks."
    ),
    "graph": "Print the dependency graph of REF in Graphviz DOT format.",
    "shell": "Run $SHELL (else /bin/sh) in the folder of REF; exit with the shell's code.",
    "rm": "Remove REF; refused (nothing removed) while something still uses it, unless --force.",
    "gc": (
        "Collect garbage: delete every derivation and realization that no root (result "
        "link, --keep, a running process, the policies) needs, then temporary leftovers. "
        "On a terminal it first lists what it would delete and asks."
    ),
    "verify": "Check that realizations (default: all) still match their hashes.",
    "export": "Export the realizations RREF and everything they were built from.",
    "import_": (
        "Import a closure archive (every object is re-hashed before it enters the store) "
        "and print its target RRefs."
    ),
    "ui": (
        "Serve a read-only web view of the store: stages, runs and plots, graphs, files, "
        "build logs (live while building), diffs, size and GC roots."
    ),
    "push": (
        "Push the realizations REF (RRefs, store paths or result links) and everything "
        "they were built from to the remote cache URL (a folder, s3://bucket/prefix, or "
        "any fsspec URL), skipping what it already holds."
    ),
    "pull": (
        "Pull the realizations RREF and everything they were built from out of the remote"
        " cache URL into the store. Every object is checked against its hash before it "
        "becomes visible; on any error the store is unchanged."
    ),
    "key": "Make and show the keys that sign what `pylightnix push --sign` sends.",
    "migrate": (
        "Re-hash every derivation and realization of an original Pylightnix store "
        "(store-v0, versions 0.2.x and 0.3.x) into this store."
    ),
    "upgrade": (
        "Upgrade the store of an older version of this pylightnix (store-v1) to the "
        "current layout (store-v2), in place."
    ),
}


def command_name(module: str) -> str:
    """The command a module of COMMANDS defines (``import_`` defines ``import``).

    >>> command_name("import_"), command_name("ls")
    ('import', 'ls')
    """
    return module.rstrip("_")


_MODULES = {command_name(m): (m, fn) for m, fn in COMMANDS}


class CliState(NamedTuple):
    """Options of the ``pylightnix`` group, handed to every command.

    Attributes:
        root: ``--store`` (a store root folder), or ``None`` for the default
            (``$PYLIGHTNIX_ROOT``, else ``~/_pylightnix``).
        debug: show tracebacks of errors.
    """

    root: str | None
    debug: bool


class _Group(click.Group):
    """Loads command modules on demand; turns library errors into one-line messages (exit 1)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in _MODULES:
            mod, fn = _MODULES[cmd_name]
            cmd = getattr(importlib.import_module(f"pylightnix.cli.{mod}"), fn)
            self.add_command(cmd, cmd_name)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            text = SHORT_HELP.get(_MODULES[name][0]) if name in _MODULES else None
            if text is not None:
                # A bare Command shortens the text exactly as the real one would.
                rows.append((name, click.Command(name, help=text).get_short_help_str(limit)))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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

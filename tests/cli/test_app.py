"""The command group: entry points, store selection, exit codes, error lines."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli.conftest import Built, Run


def test_console_script_and_module_entry_points_agree(root: str) -> None:
    """The installed ``pylightnix`` script and ``python -m pylightnix`` print the same help."""
    script = os.path.join(os.path.dirname(sys.executable), "pylightnix")
    a = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    b = subprocess.run(
        [sys.executable, "-m", "pylightnix", "--help"], capture_output=True, text=True, check=True
    )
    assert a.stdout == b.stdout
    assert a.stdout.startswith("Usage: pylightnix [OPTIONS] COMMAND [ARGS]...")


def test_every_command_has_examples_in_its_help() -> None:
    """Each command's --help shows an Examples section before the options."""
    names = [
        "init", "realize", "explain", "ls", "show", "tree", "referrers", "cat", "du", "diff",
        "find", "log", "graph", "shell", "rm", "gc", "verify", "export", "import",
    ]  # fmt: skip
    # One process calls the entry point once per command (a process each would be slow).
    code = (
        "import sys\nfrom pylightnix.cli import main\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n        main([n, '--help'])\n"
        "    except SystemExit as e:\n        assert e.code == 0, (n, e.code)\n"
        "    print('=====')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, check=True
    )
    helps = p.stdout.split("=====\n")[:-1]
    assert len(helps) == len(names)
    for n, out in zip(names, helps, strict=True):
        assert out.startswith(f"Usage: pylightnix {n} "), n
        assert out.index("Examples:") < out.index("Options:"), n


def test_missing_store_is_a_one_line_error(plx: Run, root: str) -> None:
    """A command on a store that does not exist exits 1 with one line naming it."""
    r = plx("ls", code=1)
    assert r.out == ""
    assert r.err == (
        f"Error: no pylightnix store at '{root}/store-v2': initialize it with "
        "store_initialize() / fsinit(S), or `pylightnix init`\n"
    )


def test_store_from_environment(plx: Run, root: str) -> None:
    """Without --store, PYLIGHTNIX_ROOT chooses the store."""
    plx("init")
    assert plx("ls", "--json", store=False, env={"PYLIGHTNIX_ROOT": root}).json() == []


def test_option_beats_environment(plx: Run, root: str, tmp_path: object) -> None:
    """--store wins over PYLIGHTNIX_ROOT."""
    plx("init")
    r = plx("ls", "--json", env={"PYLIGHTNIX_ROOT": "/nonexistent-plx"})
    assert r.json() == []


def test_bad_ref_is_a_one_line_error(built: Built, plx: Run) -> None:
    """A malformed ref exits 1 with the parser's message and no traceback."""
    r = plx("show", "rref:nothex", code=1)
    assert r.err == (
        "Error: invalid RRef 'rref:nothex': expected 'rref:<32 hex>-<32 hex>-<name>'\n"
    )


def test_unknown_ref_is_a_one_line_error(built: Built, plx: Run, root: str) -> None:
    """A well-formed ref that is not stored exits 1 naming it and the store."""
    missing = "rref:" + "0" * 32 + "-" + built.drefs["data"][5:37] + "-data"
    r = plx("show", missing, code=1)
    assert r.err == (
        f"Error: {missing} is not in the store at '{root}/store-v2' (removed, or built "
        "in another store?)\n"
    )


def test_debug_shows_the_traceback(built: Built, plx: Run) -> None:
    """--debug lets the error through with its traceback (exit 1)."""
    r = plx("--debug", "show", "rref:nothex", code=1)
    assert r.err.startswith("Traceback (most recent call last):")
    assert r.err.rstrip().endswith(
        "pylightnix.errors.RefError: invalid RRef 'rref:nothex': expected "
        "'rref:<32 hex>-<32 hex>-<name>'"
    )


def test_usage_errors_exit_2(plx: Run) -> None:
    """An unknown command, option or missing argument is a usage error (exit 2)."""
    assert "No such command 'frobnicate'" in plx("frobnicate", code=2).err
    assert "No such option '--bogus'" in plx("ls", "--bogus", code=2).err
    assert "Missing argument 'REF'" in plx("show", code=2).err


def test_a_word_that_is_no_ref_nor_path(built: Built, plx: Run) -> None:
    """An argument that is neither a ref nor a path says what to give instead."""
    r = plx("show", "model", code=1)
    assert r.err == (
        "Error: 'model' is neither a ref (dref:... or rref:...) nor an existing path: "
        "copy a ref from `pylightnix ls` or `pylightnix show`\n"
    )


def test_missing_cli_extra_names_the_pip_command() -> None:
    """Without click the entry point exits 1 with the pip install hint."""
    code = (
        "import sys; sys.modules['click'] = None; sys.argv = ['pylightnix', 'ls']\n"
        "from pylightnix.cli import main; main()"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 1
    assert p.stderr == (
        "pylightnix: the pylightnix command line needs the 'cli' extra (click is missing): "
        "pip install 'pylightnix-ng[cli]' (in a checkout: pip install -e '.[cli]')\n"
    )


def test_core_does_not_import_click_or_rich() -> None:
    """Importing pylightnix loads neither click nor rich."""
    code = "import sys, pylightnix; print(sorted(m for m in ('click', 'rich') if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout == "[]\n"


def test_closed_pipe_is_quiet(built: Built, root: str) -> None:
    """When stdout's reader is gone (``| head``), the command stops quietly with exit 1."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the command writes anything
    try:
        p = subprocess.run(
            [sys.executable, "-m", "pylightnix", "--store", root, "find"],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(w)
    assert (p.returncode, p.stderr) == (1, "")


def test_short_help_table_matches_the_commands() -> None:
    """SHORT_HELP gives each command the short help its own docstring gives, under its name."""
    import importlib

    import click

    from pylightnix.cli.app import COMMANDS, SHORT_HELP, command_name

    assert sorted(SHORT_HELP) == sorted(m for m, _ in COMMANDS)
    for mod, fn in COMMANDS:
        cmd = getattr(importlib.import_module(f"pylightnix.cli.{mod}"), fn)
        assert cmd.name == command_name(mod)
        for limit in (45, 70, 200):
            stand_in = click.Command(cmd.name, help=SHORT_HELP[mod])
            assert stand_in.get_short_help_str(limit) == cmd.get_short_help_str(limit), mod


def test_help_loads_no_command_module() -> None:
    """`pylightnix --help` lists every command without importing any command module or rich."""
    code = (
        "import sys\nfrom pylightnix.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('=====', sorted(m for m in sys.modules "
        "if m.startswith(('pylightnix.cli.', 'rich.console', 'rich.table', 'pylightnix.store.', "
        "'pylightnix.realize'))))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    help_text, loaded = p.stdout.split("===== ")
    assert loaded == "['pylightnix.cli.app']\n"
    listed = help_text.split("Commands:\n")[1].split()
    for name in ("cat", "gc", "import", "ls", "verify"):
        assert name in listed

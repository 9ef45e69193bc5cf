"""``pylightnix gc``."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from typing import Any

from tests.cli.conftest import Built, Run, clean_env


def test_gc_dry_run_reports_and_keeps(built: Built, plx: Run) -> None:
    """A dry run lists what would go and frees nothing."""
    rec = plx("gc", "--dry-run", "--json").json()
    assert rec["dry_run"] is True
    assert rec["deleted_rrefs"] == sorted(built.rrefs.values())
    assert rec["bytes_freed"] > 0
    assert len(plx("find", "--json").json()) == 3


def test_gc_keep_keeps_the_closure(built: Built, plx: Run) -> None:
    """--keep on the report keeps it and what it was built from; the text says bytes freed."""
    out = plx("gc", "--keep", built.rrefs["report"]).out.splitlines()
    assert out[0] == "roots (1):"
    assert out[1] == f"  {built.rrefs['report']}  (keep_rrefs)"
    assert out[-1].startswith("0 realizations, 0 derivations, ")
    assert sorted(plx("find", "--json").json()) == sorted(built.rrefs.values())


def test_gc_deletes_unrooted(built: Built, plx: Run) -> None:
    """Without roots, gc deletes every realization and reports it."""
    rec = plx("gc", "--json").json()
    assert rec["deleted_rrefs"] == sorted(built.rrefs.values())
    assert plx("find", "--json").json() == []


def _on_terminal(root: str, cwd: str, answer: str, *args: str) -> tuple[int, str]:
    """Run ``pylightnix gc`` with a pseudo-terminal as standard input, answering once."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "pylightnix", "--store", root, "gc", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(),
            cwd=cwd,
        )
        os.write(master, answer.encode())
        out, _ = p.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    return p.returncode, out


def test_gc_on_a_terminal_lists_sizes_and_deletes_nothing_unless_confirmed(
    built: Built, plx: Run, root: str, tmp_path: Any
) -> None:
    """On a terminal gc lists what it would delete with sizes and the total, then asks;
    'n' deletes nothing (exit 1), 'y' deletes exactly what was listed."""
    du = plx("du", "--json").json()
    code, out = _on_terminal(root, str(tmp_path), "n\n")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "gc would delete:"
    listed = {ln.split()[-1] for ln in lines[1:7]}
    assert listed == {*built.rrefs.values(), *built.drefs.values()}
    assert lines[7].startswith("3 realizations, 3 derivations, 0 leftovers: ")
    assert lines[8] == "delete them? [y/N]: nothing deleted"  # the answer echoes on the tty
    assert sorted(plx("find", "--json").json()) == sorted(built.rrefs.values())
    code, out = _on_terminal(root, str(tmp_path), "y\n")
    assert code == 0, out
    assert plx("find", "--json").json() == []
    assert du["total"] > 0


def test_gc_yes_does_not_ask_and_policies_keep_recent_objects(
    built: Built, plx: Run, root: str, tmp_path: Any
) -> None:
    """--yes on a terminal skips the question; --older-than 1h keeps what was just built."""
    code, out = _on_terminal(root, str(tmp_path), "", "--yes", "--older-than", "1h")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("0 realizations, 0 derivations, 0 leftovers; ")
    rec = plx("gc", "--keep-last", "1", "--json").json()
    assert rec["deleted_rrefs"] == []
    assert sorted(r["ref"] for r in rec["roots"]) == sorted(built.rrefs.values())
    assert plx("gc", "--keep-last", "-1", code=2).err.splitlines()[-1] == (
        "Error: Invalid value for '--keep-last': -1 is not in the range x>=0."
    )


def test_gc_sizes_agree_with_du(built: Built, plx: Run) -> None:
    """The bytes gc reports per realization and in total are the ones du reports."""
    du = plx("du", "--json").json()
    rec = plx("gc", "--dry-run", "--json").json()
    assert {r: rec["sizes"][r] for r in built.rrefs.values()} == {
        row["rref"]: row["size"] for row in du["realizations"]
    }
    assert rec["bytes_freed"] == du["total"]

"""``pylightnix gc``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


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

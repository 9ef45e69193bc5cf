"""``pylightnix du``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_du_json_sorted_with_closure_sizes(built: Built, plx: Run) -> None:
    """Realizations come largest first; a closure size adds everything built from."""
    rec = plx("du", "--json").json()
    rows = {r["name"]: r for r in rec["realizations"]}
    sizes = [r["size"] for r in rec["realizations"]]
    assert sizes == sorted(sizes, reverse=True)
    assert rows["data"]["closure_size"] == rows["data"]["size"]
    assert rows["train"]["closure_size"] == rows["train"]["size"] + rows["data"]["size"]
    assert rows["report"]["closure_size"] == sum(r["size"] for r in rows.values())
    assert rec["total"] >= sum(sizes)


def test_du_table_has_human_sizes(built: Built, plx: Run) -> None:
    """The table shows sizes with units and a total line."""
    lines = plx("du").out.splitlines()
    assert lines[0].split() == ["SIZE", "CLOSURE", "NAME", "RREF"]
    assert lines[-1].startswith("total: ") and lines[-1].split()[-1] in ("B", "KiB")

"""``pylightnix explain``."""

from __future__ import annotations

from tests.cli.conftest import PIPELINE, Built, Run


def test_explain_after_a_config_change(built: Built, plx: Run) -> None:
    """Changing lr: data is reused, train has no realization, report follows train."""
    rec = plx("explain", f"{PIPELINE}:report", "--arg", "lr=0.2", "--json").json()
    assert [(e["name"], e["decision"], e["details"]["code"]) for e in rec] == [
        ("data", "reuse", "matched"),
        ("train", "build", "no-realization"),
        ("report", "build", "dependency-rebuilt"),
    ]
    assert rec[0]["details"]["rrefs"] == [built.rrefs["data"]]


def test_explain_table_and_no_build(built: Built, plx: Run) -> None:
    """The table names each stage's decision; nothing is built by explaining."""
    out = plx("explain", f"{PIPELINE}:report", "--arg", "lr=0.3").out.splitlines()
    assert out[0].split() == ["STAGE", "DECISION", "WHY"]
    assert out[2].split()[:3] == ["train", "build", "no"]
    assert len(plx("find", "--json").json()) == 3


def test_explain_forced(built: Built, plx: Run) -> None:
    """--force-rebuild explains every stage as forced."""
    rec = plx("explain", f"{PIPELINE}:report", "--force-rebuild", "--json").json()
    assert [e["details"]["code"] for e in rec] == ["forced"] * 3

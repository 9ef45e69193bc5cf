"""``pylightnix diff``."""

from __future__ import annotations

from tests.cli.conftest import PIPELINE, Built, Run


def test_diff_of_two_trainings(built: Built, plx: Run) -> None:
    """Two realizations of train with other lr differ in config and in their model file."""
    other = plx("realize", f"{PIPELINE}:train", "--arg", "lr=0.2", "--no-progress").out.strip()
    rec = plx("diff", built.rrefs["train"], other, "--json").json()
    assert rec["config"] == {"added": {}, "removed": {}, "changed": {"lr": [0.1, 0.2]}}
    assert rec["files"] == {"only_in_a": [], "only_in_b": [], "changed": ["weights/model.txt"]}
    out = plx("diff", built.rrefs["train"], other).out
    assert out.splitlines()[2:] == [
        "config:",
        "  ~ lr: 0.1 -> 0.2",
        "files:",
        "  ~ weights/model.txt",
    ]


def test_diff_of_derivations_compares_configs_only(built: Built, plx: Run) -> None:
    """Two DRefs give a config difference and no file list."""
    rec = plx("diff", built.drefs["data"], built.drefs["train"], "--json").json()
    assert "files" not in rec
    assert rec["config"]["changed"] == {"name": ["data", "train"]}
    assert sorted(rec["config"]["added"]) == ["data", "lr", "model"]
    assert rec["config"]["removed"] == {"n": 100}

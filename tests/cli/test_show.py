"""``pylightnix show``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_show_realization_json(built: Built, plx: Run, root: str) -> None:
    """A realization shows its config, direct context, build times, files and log."""
    rec = plx("show", built.rrefs["train"], "--json").json()
    assert rec["rref"] == built.rrefs["train"]
    assert rec["dref"] == built.drefs["train"]
    assert rec["config"] == {
        "name": "train",
        "lr": 0.1,
        "data": [built.drefs["data"], "data.csv"],
        "model": ["<self>", "weights", "model.txt"],
    }
    assert rec["context"] == {built.drefs["data"]: [built.rrefs["data"]]}
    assert rec["files"] == [{"path": "weights/model.txt", "size": 24}]
    assert rec["build_start"] <= rec["build_stop"]
    assert rec["has_log"] is True
    assert rec["path"].startswith(f"{root}/store-v2/")


def test_show_derivation_json(built: Built, plx: Run) -> None:
    """A derivation shows its config and its realizations."""
    rec = plx("show", built.drefs["data"], "--json").json()
    assert rec["config"] == {"name": "data", "n": 100}
    assert [x["rref"] for x in rec["realizations"]] == [built.rrefs["data"]]


def test_show_text(built: Built, plx: Run) -> None:
    """The text form names the ref, its context and its files."""
    out = plx("show", built.rrefs["train"]).out
    assert out.splitlines()[0] == built.rrefs["train"]
    assert f"  {built.drefs['data']} -> {built.rrefs['data']}\n" in out
    assert "      24 B  weights/model.txt\n" in out
    assert f"log:     pylightnix log {built.rrefs['train']}\n" in out


def test_show_of_a_silent_realization_has_no_log(built: Built, plx: Run) -> None:
    """A build that printed nothing stored no build.log: show says so and log prints nothing."""
    rec = plx("show", built.rrefs["report"], "--json").json()
    assert rec["has_log"] is False
    assert plx("log", built.rrefs["report"]).out == ""

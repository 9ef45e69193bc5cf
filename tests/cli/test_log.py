"""``pylightnix log``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_log_of_a_realization_and_of_a_derivation(built: Built, plx: Run) -> None:
    """log prints the captured output; a DRef means its most recent realization."""
    assert plx("log", built.rrefs["data"]).out == "generating 100 samples\n"
    assert plx("log", built.drefs["train"]).out == "training on 100 rows with lr=0.1\n"
    assert plx("log", built.rrefs["report"]).out == ""

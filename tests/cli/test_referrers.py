"""``pylightnix referrers``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_referrers(built: Built, plx: Run) -> None:
    """referrers lists direct users: realizations of realizations, derivations of derivations."""
    assert plx("referrers", built.rrefs["data"], "--json").json() == [built.rrefs["train"]]
    assert plx("referrers", built.drefs["train"]).out == built.drefs["report"] + "\n"
    assert plx("referrers", built.rrefs["report"], "--json").json() == []

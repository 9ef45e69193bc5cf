"""``pylightnix find``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_find_by_name_and_age(built: Built, plx: Run) -> None:
    """find filters realizations by name glob and age; oldest build first."""
    assert plx("find", "--name", "rep*", "--json").json() == [built.rrefs["report"]]
    assert plx("find", "--newer", "10m", "--json").json() == [
        built.rrefs["data"], built.rrefs["train"], built.rrefs["report"],
    ]  # fmt: skip
    assert plx("find", "--name", "zzz*").out == ""

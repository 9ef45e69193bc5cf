"""``pylightnix rm``."""

from __future__ import annotations

from tests.cli.conftest import Built, Run


def test_rm_refuses_a_used_realization(built: Built, plx: Run) -> None:
    """Removing what another realization uses exits 1 and removes nothing."""
    r = plx("rm", built.rrefs["data"], code=1)
    assert r.err == (
        f"Error: cannot delete {built.rrefs['data']} : it is still used by "
        f"{built.rrefs['train']} (use `pylightnix rm --force`, or remove that one first)\n"
    )
    assert len(plx("find", "--json").json()) == 3


def test_rm_unused_then_forced(built: Built, plx: Run) -> None:
    """An unused realization is removed; --force removes a used one."""
    assert plx("rm", built.rrefs["report"], "--json").json() == [built.rrefs["report"]]
    assert plx("rm", built.rrefs["data"], "--force").out == f"removed {built.rrefs['data']}\n"
    assert plx("find", "--json").json() == [built.rrefs["train"]]

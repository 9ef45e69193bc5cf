"""``pylightnix verify``."""

from __future__ import annotations

import os

from tests.cli.conftest import Built, Run


def _tamper(plx: Run, rref: str, name: str) -> None:
    """Append a line to the file ``name`` of a stored realization, keeping it read-only."""
    f = os.path.join(plx("show", rref, "--json").json()["path"], name)
    os.chmod(f, 0o644)
    with open(f, "a") as fh:
        fh.write("tampered\n")
    os.chmod(f, 0o444)


def test_verify_clean_store(built: Built, plx: Run) -> None:
    """A healthy store verifies with exit 0."""
    rec = plx("verify", "--json").json()
    assert rec["ok"] is True
    assert sorted(rec["checked"]) == sorted(built.rrefs.values())
    assert plx("verify", built.rrefs["data"]).out == "checked 1 realizations, 0 damaged\n"


def test_verify_damaged_exits_1(built: Built, plx: Run) -> None:
    """A modified artifact is reported and the exit code is 1."""
    _tamper(plx, built.rrefs["data"], "data.csv")
    r = plx("verify", code=1)
    assert r.out.splitlines()[0].startswith(f"DAMAGED {built.rrefs['data']}: ")
    assert r.out.splitlines()[-1] == "checked 3 realizations, 1 damaged"
    rec = plx("verify", "--json", code=1).json()
    assert [d["rref"] for d in rec["damaged"]] == [built.rrefs["data"]]


def test_verify_wants_realizations(built: Built, plx: Run) -> None:
    """A DRef argument is refused with the way to list its realizations."""
    d = built.drefs["data"]
    assert plx("verify", d, code=1).err == (
        f"Error: '{d}' is a derivation; this command needs a realization (rref:...): "
        f"list them with `pylightnix show {d}`\n"
    )


def test_verify_repair_quarantine(built: Built, plx: Run, root: str) -> None:
    """--repair quarantine moves the damaged realization out of the store and says so."""
    _tamper(plx, built.rrefs["report"], "report.txt")
    rec = plx("verify", "--repair", "quarantine", "--json", code=1).json()
    (d,) = rec["damaged"]
    assert d["rref"] == built.rrefs["report"]
    assert d["action"].startswith(f"quarantined to {root}/quarantine/")
    assert built.rrefs["report"] not in plx("find", "--json").json()
    assert plx("verify", "--json").json()["ok"] is True


def test_verify_no_rehash_checks_structure_only(built: Built, plx: Run) -> None:
    """--no-rehash does not see an edited artifact (the full verify does)."""
    _tamper(plx, built.rrefs["data"], "data.csv")
    assert plx("verify", "--no-rehash").out == "checked 3 realizations, 0 damaged\n"
    plx("verify", code=1)

"""``pylightnix migrate``."""

from __future__ import annotations

import os
from typing import Any

from tests.cli.conftest import Run
from tests.legacy.oldstore import OldStore, snapshot


def _old(tmp_path: Any) -> tuple[OldStore, str, str, str]:
    o = OldStore(str(tmp_path / "old" / "_pylightnix"), "0.3")
    a = o.mkdrv({"name": "a", "artifact": ["__self__", "artifact"]})
    ra = o.mkrealization(a, {}, {"artifact": "42"})
    bad = o.mkrealization(a, {}, {"x": "1"}, extra={"either_status.txt": "Traceback"})
    return o, a, ra, bad


def test_migrate_prints_the_mapping_and_exits_1_on_skips(plx: Run, tmp_path: Any) -> None:
    """It maps old refs to new ones, reports skips, exits 1 and leaves the old store alone."""
    o, a, ra, bad = _old(tmp_path)
    plx("init")
    before = snapshot(o.store)
    r = plx("migrate", o.root, code=1)
    assert snapshot(o.store) == before
    lines = r.out.splitlines()
    rec = plx("migrate", o.root, "--json", code=1).json()
    new_a, new_ra = rec["drefs"][a], rec["rrefs"][ra]
    assert lines == [
        f"{a} -> {new_a}",
        f"{ra} -> {new_ra}",
        f"SKIPPED {bad}: it is a failed build of the original's either module (either_status.txt)",
        "migrated 1 derivations and 1 realizations, skipped 1",
    ]
    assert rec["ok"] is False
    assert rec["source"] == o.store
    assert plx("cat", new_ra, "artifact").out == "42"


def test_migrate_clean_store_exits_0(plx: Run, tmp_path: Any) -> None:
    """Without skips the exit code is 0."""
    o = OldStore(str(tmp_path / "o2"), "0.2")
    d = o.mkdrv({"name": "n"})
    o.mkrealization(d, {}, {"f": "x"})
    plx("init")
    r = plx("migrate", os.path.join(o.root, "store-v0"))
    assert r.out.splitlines()[-1] == "migrated 1 derivations and 1 realizations, skipped 0"


def test_migrate_not_an_old_store(plx: Run, tmp_path: Any) -> None:
    """A folder that is no old store is a one-line error."""
    plx("init")
    p = str(tmp_path / "empty")
    os.makedirs(p)
    assert plx("migrate", p, code=1).err == (
        f"Error: {p!r} is not a store of the original Pylightnix: expected a folder named "
        "'store-v0' or a root folder holding one (e.g. ~/_pylightnix)\n"
    )

"""``pylightnix export`` and ``pylightnix import``."""

from __future__ import annotations

import os

from tests.cli.conftest import Built, Run


def test_export_then_import_into_another_store(
    built: Built, plx: Run, tmp_path: object, root: str
) -> None:
    """A closure exported from one store imports into a fresh one with equal RRefs and files."""
    arc = os.path.join(str(tmp_path), "report.tar.gz")
    plx("export", built.rrefs["report"], "-o", arc, "--compression", "gz")
    other = os.path.join(str(tmp_path), "other")
    plx("--store", other, "init", store=False)
    got = plx("--store", other, "import", arc, "--json", store=False).json()
    assert got == [built.rrefs["report"]]
    found = plx("--store", other, "find", "--json", store=False).json()
    assert sorted(found) == sorted(built.rrefs.values())
    assert plx("--store", other, "cat", built.rrefs["train"], "weights/model.txt",
               store=False).out == "model(lr=0.1, rows=100)\n"  # fmt: skip

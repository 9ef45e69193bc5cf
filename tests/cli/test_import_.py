"""``pylightnix import``."""

from __future__ import annotations

import os

from tests.cli.conftest import Run


def test_import_of_a_bad_archive_fails_cleanly(plx: Run, tmp_path: object) -> None:
    """A file that is no archive exits 1 with one line and the store stays empty."""
    plx("init")
    bad = os.path.join(str(tmp_path), "bad.tar")
    with open(bad, "w") as f:
        f.write("not an archive")
    r = plx("import", bad, code=1)
    assert r.err.startswith(f"Error: archive '{bad}' is corrupt or truncated (")
    assert r.err.endswith("): get a good copy of it\n") and len(r.err.splitlines()) == 1
    assert plx("find", "--json").json() == []

"""``pylightnix shell``."""

from __future__ import annotations

import os

from tests.cli.conftest import Built, Run


def test_shell_runs_in_the_realization_folder(built: Built, plx: Run, tmp_path: object) -> None:
    """$SHELL starts in the realization's folder and its exit code is passed on."""
    script = os.path.join(str(tmp_path), "fake-shell")
    where = os.path.join(str(tmp_path), "where")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\npwd > {where}\nexit 3\n")
    os.chmod(script, 0o755)
    plx("shell", built.rrefs["train"], env={"SHELL": script}, code=3)
    path = plx("show", built.rrefs["train"], "--json").json()["path"]
    with open(where) as f:
        assert f.read() == path + "\n"

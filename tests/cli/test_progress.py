"""Progress display: live on a terminal (a real pseudo-terminal here), plain lines otherwise."""

from __future__ import annotations

import os
import sys

from pylightnix.progress import ProgressEvent
from tests.cli.conftest import PIPELINE, Run, clean_env
from tests.helpers import run_on_pty


def test_live_display_on_a_terminal(plx: Run, root: str) -> None:
    """On a terminal, the live display shows the stage counts; stdout still has just the RRef."""
    plx("init")
    env = {**clean_env(), "TERM": "xterm"}
    code, out, term = run_on_pty(
        [sys.executable, "-m", "pylightnix", "--store", root, "realize", f"{PIPELINE}:report"],
        env,
    )
    assert code == 0
    assert out.endswith("-report\n") and len(out.splitlines()) == 1
    assert "stages 3/3 · built 3/3 · reused 0" in term
    assert "built  data" in term
    assert "generating 100 samples" not in term  # build output stays in the log


def test_plain_download_lines_show_bytes_and_rate() -> None:
    """Download events become throttled plain lines with amounts and rate."""
    from pylightnix.cli.progress import ProgressView

    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    try:
        with ProgressView(live=False) as view:
            view(ProgressEvent("download", name="fetch-x", done=2**20, total=2**22,
                               extra={"rate": 2.0 * 2**20}))  # fmt: skip
            view(ProgressEvent("download", name="fetch-x", done=2**21, total=2**22,
                               extra={"rate": 2.0 * 2**20}))  # fmt: skip
            view(ProgressEvent("download", name="fetch-x", done=2**22, total=2**22,
                               extra={"rate": 4.0 * 2**20}))  # fmt: skip
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    with os.fdopen(r) as f:
        lines = [x.split("] ", 1)[1] for x in f.read().splitlines()]
    assert lines == [
        "fetch  fetch-x  1.0 MiB / 4.0 MiB (25%) at 2.0 MiB/s",
        "fetch  fetch-x  4.0 MiB / 4.0 MiB (100%) at 4.0 MiB/s",
    ]

"""The progress display of realize(progress=True): live on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from pylightnix import (
    Build,
    DRef,
    RealizeError,
    Registry,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    instantiate,
    match_latest,
    mkdrv,
    realize,
)
from pylightnix.realize.display import ProgressDisplay, in_notebook, stage_labels
from tests.helpers import run_on_pty

SCRIPT = """
import os, sys
from pylightnix import build_wrapper, build_outpath, instantiate, match_latest, mkdrv, mkSS, fsinit
from pylightnix import realize

def _write(b):
    print("working hard")
    with open(os.path.join(build_outpath(b), "x.txt"), "w") as f:
        f.write("x")

def sweep(r=None):
    data = mkdrv({"name": "data"}, match_latest(), build_wrapper(_write), r)
    return [mkdrv({"name": "train", "lr": lr, "data": data}, match_latest(),
                  build_wrapper(_write), r) for lr in (0.1, 0.3)]

S = fsinit(mkSS(sys.argv[1]))
clo = instantiate(sweep, S=S)
realize(clo, **({"progress": True} if sys.argv[2] == "arg" else {}))
print("result", len(clo[0]))
"""


def _script(tmp_path: Any) -> str:
    p = os.path.join(tmp_path, "sweep_script.py")
    with open(p, "w") as f:
        f.write(SCRIPT)
    return p


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")}
    return {**env, **extra}


def test_progress_true_on_a_pty_draws_the_live_display(tmp_path: Any) -> None:
    """realize(progress=True) with stderr on a pseudo-terminal draws the live display."""
    args = [sys.executable, _script(tmp_path), str(tmp_path / "plx"), "arg"]
    code, out, term = run_on_pty(args, _env(TERM="xterm"))
    assert code == 0
    assert "\x1b[" in term  # drawn with terminal control sequences
    assert "stages 3/3 · built 3 · reused 0" in term
    assert "built  train lr=0.1" in term
    assert "built  train lr=0.3" in term
    assert "working hard" not in term  # build output stays in the build logs
    assert out == "result 2\n"


def test_progress_true_without_a_terminal_prints_plain_lines(tmp_path: Any) -> None:
    """With stderr on a pipe, the display is plain lines, one per event worth a line."""
    p = subprocess.run(
        [sys.executable, _script(tmp_path), str(tmp_path / "plx"), "arg"],
        capture_output=True, text=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    lines = [x.split("] ", 1)[1] for x in p.stderr.splitlines()]
    assert lines[0] == "plan   3 stages"
    assert [x.split("  ")[0:2] for x in lines[1:7]] == [
        ["build", "data"], ["built", "data"],
        ["build", "train lr=0.1"], ["built", "train lr=0.1"],
        ["build", "train lr=0.3"], ["built", "train lr=0.3"],
    ]  # fmt: skip
    assert lines[7].startswith("done   3 stages: 3 built, 0 reused in ")
    assert "\x1b[" not in p.stderr


def test_environment_variable_turns_progress_on(tmp_path: Any) -> None:
    """PYLIGHTNIX_PROGRESS=1 shows the display without progress=True; unset, nothing shows."""
    quiet = subprocess.run(
        [sys.executable, _script(tmp_path), str(tmp_path / "a"), "env"],
        capture_output=True, text=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, _script(tmp_path), str(tmp_path / "b"), "env"],
        capture_output=True, text=True, env=_env(PYLIGHTNIX_PROGRESS="1"), check=True, timeout=60,
    )  # fmt: skip
    assert "] plan   3 stages" in loud.stderr
    assert "] done   3 stages: 3 built, 0 reused in " in loud.stderr


class _Lines(io.StringIO):
    """A stream the display writes to while the test reads it from another thread."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            return super().write(s)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


GO = threading.Event()


def _slow(b: Build) -> None:
    print(f"epoch 1 of {build_cattrs(b).name}", flush=True)
    assert GO.wait(30), "the test never saw the heartbeat line"
    with open(os.path.join(build_outpath(b), "m.txt"), "w") as f:
        f.write("m")


def test_long_build_shows_elapsed_time_and_last_log_line(S: StorageSettings) -> None:
    """A build running past the heartbeat gets a plain line with its time and last log line."""
    GO.clear()
    out = _Lines()
    clo = instantiate(lambda: mkdrv({"name": "slow"}, match_latest(), build_wrapper(_slow)), S=S)
    result: list[Any] = []
    with ProgressDisplay(stream=out, heartbeat=0.2) as view:
        t = threading.Thread(target=lambda: result.append(realize(clo, progress=view)))
        t.start()
        deadline = time.monotonic() + 30
        while "still  slow" not in out.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        GO.set()
        t.join(60)
    still = [x for x in out.text().splitlines() if "still  slow" in x]
    assert still, out.text()
    assert still[0].split("] ", 1)[1].startswith("still  slow (")
    assert still[0].endswith("s): epoch 1 of slow")
    assert len(result) == 1


def test_stage_labels_tell_same_named_stages_apart(S: StorageSettings) -> None:
    """Same-named stages are labelled by the differing key, else by a short hash."""

    def st(r: Registry) -> list[DRef]:
        a = mkdrv({"name": "data", "n": 1}, match_latest(), build_wrapper(_slow), r)
        b = mkdrv({"name": "data", "n": 2}, match_latest(), build_wrapper(_slow), r)
        t1 = mkdrv({"name": "train", "data": a, "lr": 0.1}, match_latest(), build_wrapper(_slow), r)
        t2 = mkdrv({"name": "train", "data": b, "lr": 0.1}, match_latest(), build_wrapper(_slow), r)
        u = mkdrv({"name": "solo", "x": [1]}, match_latest(), build_wrapper(_slow), r)
        return [t1, t2, u]

    res, clo = instantiate(st, S=S)
    labels = stage_labels(clo.derivations)
    a, b = (d.dref for d in clo.derivations[:2])
    assert labels[a] == "data n=1"
    assert labels[b] == "data n=2"
    assert labels[res[0]] == "train data=data@" + res[0][5:11]
    assert labels[res[1]] == "train data=data@" + res[1][5:11]
    assert labels[res[2]] == "solo"


def test_bad_progress_value_is_refused(S: StorageSettings) -> None:
    """progress= must be a bool or a callable."""
    clo = instantiate(lambda: mkdrv({"name": "x"}, match_latest(), build_wrapper(_slow)), S=S)
    with pytest.raises(RealizeError) as e:
        realize(clo, progress="yes")
    assert str(e.value) == (
        "progress='yes': pass True (show a display), False, or a callable receiving "
        "ProgressEvent records"
    )


def test_not_a_notebook() -> None:
    """A plain interpreter is not a Jupyter kernel."""
    assert in_notebook() is False


def test_downloads_go_to_the_display_not_the_log(S: StorageSettings, tmp_path: Any) -> None:
    """A fetch under a display shows its bytes there; the build log gets no progress lines."""
    import hashlib

    from pylightnix import fetchurl, realize1, rreflog
    from pylightnix.progress import human_size
    from tests.serve import serve_dir

    www = tmp_path / "www"
    www.mkdir()
    import gzip

    data = gzip.compress(os.urandom(1 << 20), compresslevel=1)
    (www / "blob.bin.gz").write_bytes(data)
    out = _Lines()
    with serve_dir(str(www)) as srv, ProgressDisplay(stream=out, live=False) as view:
        clo = instantiate(
            fetchurl, url=f"{srv.url}/blob.bin.gz", sha256=hashlib.sha256(data).hexdigest(), S=S
        )
        rref = realize1(clo, progress=view)
    lines = [x.split("] ", 1)[1] for x in out.text().splitlines()]
    assert [x for x in lines if x.startswith("fetch  ")][-1].startswith(
        f"fetch  blob_bin  {human_size(len(data))} / {human_size(len(data))} (100%) at "
    )
    assert "MiB" not in rreflog(rref, S)

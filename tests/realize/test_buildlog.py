"""Build logs: capture of realizer output into ``__pylightnix__/build.log``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from pylightnix import (
    Build,
    BuildError,
    ProgressEvent,
    StorageSettings,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_wrapper,
    instantiate,
    match_latest,
    match_only,
    mkdrv,
    realize,
    realize1,
    rref2path,
    rreflog,
)
from pylightnix.realize.buildlog import capture_build_log, log_tail, rreflog_path, rreflog_tail
from pylightnix.store.fsops import mkdtemp_in
from pylightnix.store.insert import store_realization
from pylightnix.types import DRef


def _chatty(b: Build) -> None:
    c = build_cattrs(b)
    print(f"python says {c.word}")
    print(f"python warns {c.word}", file=sys.stderr)
    subprocess.run(
        ["sh", "-c", f"echo shell says {c.word}; echo shell warns {c.word} >&2"], check=True
    )
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(c.word)


def _chatty_stage(word: str = "hello") -> DRef:
    return mkdrv({"name": "chatty", "word": word}, match_only(), build_wrapper(_chatty))


def test_sequential_build_captures_python_and_subprocess_output(S: StorageSettings) -> None:
    """With jobs=1 the log holds Python prints and a subprocess's stdout and stderr, in order."""
    rref = realize1(instantiate(_chatty_stage, S=S))
    assert rreflog(rref, S) == (
        "python says hello\npython warns hello\nshell says hello\nshell warns hello\n"
    )


def test_captured_output_does_not_reach_the_terminal(
    S: StorageSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without show_log, nothing the realizer prints appears on fds 1 and 2."""
    realize1(instantiate(_chatty_stage, S=S), show_log=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_show_log_tees_output_live(S: StorageSettings, capfd: pytest.CaptureFixture[str]) -> None:
    """show_log=True shows the output on the original stdout and still stores it."""
    rref = realize1(instantiate(_chatty_stage, "tee", S=S), show_log=True)
    out, _ = capfd.readouterr()
    assert out == "python says tee\npython warns tee\nshell says tee\nshell warns tee\n"
    assert rreflog(rref, S) == out


def test_show_log_env_var_tees_output(
    S: StorageSettings, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PYLIGHTNIX_SHOW_LOG=1 has the effect of show_log=True."""
    monkeypatch.setenv("PYLIGHTNIX_SHOW_LOG", "1")
    realize1(instantiate(_chatty_stage, "env", S=S))
    out, _ = capfd.readouterr()
    assert "shell says env\n" in out


def test_log_is_outside_the_content_hash(S: StorageSettings) -> None:
    """Two forced builds printing different text give the same RRef; the first log is kept."""
    counter = {"n": 0}

    def stage() -> DRef:
        return mkdrv({"name": "quiet"}, match_latest(), build_wrapper(_print_counter))

    _COUNTER.clear()
    _COUNTER.append(counter)
    r1 = realize1(instantiate(stage, S=S))
    r2 = realize1(instantiate(stage, S=S), force_rebuild=True)
    assert r1 == r2
    assert rreflog(r1, S) == "run 1\n"
    assert counter["n"] == 2


_COUNTER: list[dict[str, int]] = []


def _print_counter(b: Build) -> None:
    c = _COUNTER[0]
    c["n"] += 1
    print(f"run {c['n']}")
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write("same")


def test_log_file_is_read_only_in_the_store(S: StorageSettings) -> None:
    """The stored build.log cannot be written to, like every file of a realization."""
    rref = realize1(instantiate(_chatty_stage, S=S))
    p = os.path.join(rref2path(rref, S), "__pylightnix__", "build.log")
    assert os.stat(p).st_mode & 0o222 == 0


def _fail_loudly(b: Build) -> None:
    for i in range(30):
        print(f"step {i}")
    subprocess.run(["sh", "-c", "echo disk full >&2"], check=True)
    raise RuntimeError("boom")


def test_failed_build_error_carries_the_log_tail(S: StorageSettings) -> None:
    """A BuildError's notes hold the last 20 log lines and the store gains no realization."""

    def stage() -> DRef:
        return mkdrv({"name": "loud"}, match_only(), build_wrapper(_fail_loudly))

    with pytest.raises(BuildError) as ei:
        realize1(instantiate(stage, S=S))
    expected = "last 20 lines of the build log:\n" + "\n".join(
        [f"  | step {i}" for i in range(11, 30)] + ["  | disk full"]
    )
    assert ei.value.__notes__ == [expected]
    assert list(allrrefs(S)) == []
    assert os.listdir(S.tmpdir) == []


_BARRIER: list[threading.Barrier] = []


def _parallel_printer(b: Build) -> None:
    w = build_cattrs(b).word
    print(f"{w} before")
    # Both builds are inside their capture at once: prints interleave in time.
    _BARRIER[0].wait(timeout=30)
    print(f"{w} after")
    with open(os.path.join(build_outpath(b), "w"), "w") as f:
        f.write(w)


def _two_printers() -> list[DRef]:
    return [
        mkdrv({"name": n, "word": n}, match_only(), build_wrapper(_parallel_printer))
        for n in ("left", "right")
    ]


def test_parallel_builds_keep_separate_logs(S: StorageSettings) -> None:
    """With jobs=2, two builds printing at the same time each get only their own lines."""
    _BARRIER.clear()
    _BARRIER.append(threading.Barrier(2))
    _, _, ctx = realize(instantiate(_two_printers, S=S), jobs=2)
    logs = {rreflog(v[0], S) for v in ctx.values()}
    assert logs == {"left before\nleft after\n", "right before\nright after\n"}
    assert sys.stdout.__class__.__name__ != "_StreamProxy"


def test_rreflog_of_a_realization_without_log_is_empty(S: StorageSettings) -> None:
    """A realization stored without a log (as a silent build is) has an empty log."""
    _, clo = instantiate(_chatty_stage, S=S)
    d = clo.targets[0]
    out = mkdtemp_in(S.tmpdir, "out")
    rref = store_realization(S, d, clo.derivations[0].config, {}, out, build_start=0.0)
    assert not os.path.lexists(rreflog_path(rref, S))
    assert rreflog(rref, S) == ""
    assert rreflog_tail(rref, S) == []


def test_build_event_is_reported_only_for_built_stages(S: StorageSettings) -> None:
    """A "build" progress event precedes each realizer run, then "log" names its log file;
    reused stages get neither."""
    events: list[ProgressEvent] = []
    clo = instantiate(_chatty_stage, S=S)
    realize(clo, progress=events.append)
    assert [e.kind for e in events] == ["plan", "check", "build", "log", "built", "done"]
    assert events[3].extra["path"].endswith("__pylightnix_build.log")
    events.clear()
    realize(clo, progress=events.append)
    assert [e.kind for e in events] == ["plan", "check", "reuse", "done"]


def test_nested_fd_capture_falls_back_to_python_level(tmp_path: Any) -> None:
    """A second capture while one holds the descriptors captures Python writes only."""
    outer, inner = str(tmp_path / "outer.log"), str(tmp_path / "inner.log")
    with capture_build_log(outer) as m1:
        with capture_build_log(inner) as m2:
            print("inner line")
        print("outer line")
    assert (m1, m2) == ("fd", "python")
    assert log_tail(inner) == ["inner line"]
    assert log_tail(outer) == ["outer line"]


def _python_only(b: Build) -> None:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    with open(os.path.join(build_outpath(b), "x"), "w") as f:
        f.write("x")


def _python_only_stage() -> DRef:
    return mkdrv({"name": "py"}, match_only(), build_wrapper(_python_only))


_NO_STDIO_CHILD = """
import os, sys
os.close(1)
os.close(2)
sys.path.insert(0, sys.argv[3])
from pylightnix import mkSS, instantiate, realize1, rreflog
from tests.realize.test_buildlog import _python_only_stage
S = mkSS(sys.argv[1])
r = realize1(instantiate(_python_only_stage, S=S))
with open(sys.argv[2], "w") as f:
    f.write(rreflog(r, S))
"""


def test_process_without_stdout_and_stderr_still_builds(S: StorageSettings, tmp_path: Any) -> None:
    """With fds 1 and 2 closed (a daemon), the build succeeds and Python writes are logged."""
    out = tmp_path / "log.txt"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", _NO_STDIO_CHILD, S.root, str(out), repo], check=True)
    assert out.read_text() == "to stdout\nto stderr\n"

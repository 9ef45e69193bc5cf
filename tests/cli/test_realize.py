"""``pylightnix realize``: stage references, progress lines, build logs, result links."""

from __future__ import annotations

import os
import re
from typing import Any

from tests.cli.conftest import PIPELINE, Built, Run


def _lines_without_times(err: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in err.splitlines()]


def test_realize_prints_target_rrefs_and_plain_progress(plx: Run) -> None:
    """Off a terminal, progress is plain lines on stderr; stdout is the target's RRef."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report")
    rref = r.out.strip()
    assert rref.startswith("rref:") and rref.endswith("-report")
    lines = _lines_without_times(r.err)
    assert lines[0] == "plan   3 stages, 3 to build"
    assert [x.split("  ")[0] for x in lines[1:-1]] == [
        "build", "built", "build", "built", "build", "built",
    ]  # fmt: skip
    assert lines[-1].startswith("done   3 stages: 3 built, 0 reused in ")
    again = plx("realize", f"{PIPELINE}:report")
    assert again.out == r.out
    assert _lines_without_times(again.err)[0] == "plan   3 stages, 0 to build"
    assert [x.split("  ")[0] for x in _lines_without_times(again.err)[1:-1]] == ["reuse"] * 3


def test_realize_json_gives_targets_and_context(built: Built, plx: Run) -> None:
    """--json lists the target's chosen RRefs and the whole context."""
    rec = plx("realize", f"{PIPELINE}:report", "--json", "--no-progress").json()
    assert rec["targets"] == {built.drefs["report"]: [built.rrefs["report"]]}
    assert sorted(rec["context"]) == sorted(built.drefs.values())


def test_realize_module_reference_with_args(plx: Run) -> None:
    """module:function is imported from the current folder; --arg values are JSON."""
    plx("init")
    here = os.path.dirname(PIPELINE)
    r = plx("realize", "pipeline:train", "--arg", "lr=0.5", "--arg", "n=3", "--no-progress",
            "--json", cwd=here)  # fmt: skip
    (rrefs,) = r.json()["targets"].values()
    assert plx("show", rrefs[0], "--json").json()["config"]["lr"] == 0.5
    assert plx("cat", rrefs[0], "weights/model.txt").out == "model(lr=0.5, rows=3)\n"


def test_build_output_goes_to_the_log_not_the_terminal(built: Built, plx: Run) -> None:
    """What realizers print (Python and subprocess) is kept in the log, not shown."""
    assert plx("log", built.rrefs["data"]).out == "generating 100 samples\n"
    assert plx("log", built.rrefs["train"]).out == "training on 100 rows with lr=0.1\n"


def test_show_log_tees_build_output_to_stderr(plx: Run) -> None:
    """--show-log shows build output live on stderr; stdout keeps only the RRef."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:train", "--show-log", "--no-progress")
    assert r.err == "generating 100 samples\ntraining on 100 rows with lr=0.1\n"
    assert r.out.endswith("-train\n") and len(r.out.splitlines()) == 1


def test_failed_build_exits_1_with_the_log_tail(plx: Run, root: str) -> None:
    """A failing realizer gives exit 1, the error, the log tail; the store gains nothing."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:broken", "--no-progress", code=1)
    lines = r.err.splitlines()
    assert lines[0].startswith("Error: building stage 'broken' (dref:")
    assert lines[0].endswith("failed: RuntimeError: the realizer gave up")
    assert lines[1:] == ["last 1 lines of the build log:", "  | about to fail"]
    assert plx("find", "--json").json() == []


def test_dry_run_builds_nothing(plx: Run) -> None:
    """--dry-run reports what would be built and stores no realization."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--dry-run")
    assert r.out.endswith("-report (would be built)\n")
    assert plx("find", "--json").json() == []


def test_out_link_becomes_a_gc_root(plx: Run, tmp_path: object) -> None:
    """-o makes a result link that gc lists as a root and keeps alive."""
    plx("init")
    link = os.path.join(str(tmp_path), "result")
    rref = plx("realize", f"{PIPELINE}:report", "-o", link, "--no-progress").out.strip()
    assert os.path.islink(link)
    assert plx("show", link, "--json").json()["rref"] == rref
    res = plx("gc", "--json").json()
    assert res["roots"] == [{"ref": rref, "why": f"link {link}"}]
    assert res["deleted_rrefs"] == []


def test_explain_flag_prints_decisions_in_progress(plx: Run) -> None:
    """--explain adds one decision line per stage to the progress output."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--explain")
    lines = _lines_without_times(r.err)
    assert lines[0:3] == [
        "build  data: no realization of this config exists",
        "build  train: dependency 'data' will be built, so it is needed in a new context",
        "build  report: dependency 'train' will be built, so it is needed in a new context",
    ]


def test_bad_stage_references_are_usage_errors(plx: Run) -> None:
    """Malformed references, missing files and functions exit 2 with the reason."""
    plx("init")
    assert "is not a stage reference" in plx("realize", "nocolon", code=2).err
    assert "no such file: 'missing.py'" in plx("realize", "missing.py:f", code=2).err
    assert "has no function 'nope'" in plx("realize", f"{PIPELINE}:nope", code=2).err
    assert "cannot import 'no_such_mod_xyz'" in plx("realize", "no_such_mod_xyz:f", code=2).err
    assert (
        "'lr' is not KEY=VALUE" in plx("realize", f"{PIPELINE}:report", "--arg", "lr", code=2).err
    )


def test_parallel_jobs_realize_the_same_result(built: Built, plx: Run, root: str) -> None:
    """--jobs 2 on a forced rebuild yields a realization with a captured log."""
    r = plx("realize", f"{PIPELINE}:report", "--jobs", "2", "--force-rebuild", "--json",
            "--no-progress")  # fmt: skip
    ctx = r.json()["context"]
    (data_rref,) = ctx[built.drefs["data"]]
    assert plx("log", data_rref).out == "generating 100 samples\n"


def test_unknown_arg_is_a_one_line_error(plx: Run) -> None:
    """An --arg the stage function has no parameter for gives exit 1 naming the parameters,
    before the stage runs."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--arg", "nope=1", code=1)
    assert r.err == (
        f"Error: stage {PIPELINE}:report has no parameter 'nope' (its parameters: lr, n)\n"
    )
    assert plx("ls", "--json").json() == []


def test_realize_on_a_local_dask_cluster(plx: Run, tmp_path: Any) -> None:
    """--dask local:2 builds the pipeline file's stages on two worker processes."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--dask", "local:2", "--json")
    lines = _lines_without_times(r.err)
    runs = [x for x in lines if x.startswith("run    ")]
    assert [x.split("  ")[0] for x in runs] == ["run"] * 3
    assert all(re.fullmatch(r"run    \w+  on tcp://127\.0\.0\.1:\d+ \(.+\)", x) for x in runs)
    other = str(tmp_path / "other")
    plx("--store", other, "init", store=False)
    seq = plx("--store", other, "realize", f"{PIPELINE}:report", "--json", store=False)
    assert r.json() == seq.json()
    (train,) = (rs[0] for d, rs in r.json()["context"].items() if d.endswith("-train"))
    assert plx("log", train).out == "training on 100 rows with lr=0.1\n"  # a subprocess's


def test_realize_dask_refuses_a_bad_local_spec(plx: Run) -> None:
    """--dask local:0 is refused with what to write instead."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--dask", "local:0", code=1)
    assert r.err == (
        "Error: --dask 'local:0': expected local:N with N a positive number of worker "
        "processes, e.g. local:4\n"
    )


def test_realize_dask_with_a_folder_remote(plx: Run, tmp_path: Any) -> None:
    """--dask local:1 --remote DIR builds on the worker's own store and pulls the results."""
    plx("init")
    cache = str(tmp_path / "cache")
    worker_root = str(tmp_path / "worker-root")
    env = {"PYLIGHTNIX_ROOT": worker_root}
    r = plx("realize", f"{PIPELINE}:report", "--dask", "local:1", "--remote", cache, "--json",
            "--no-progress", env=env)  # fmt: skip
    other = str(tmp_path / "other")
    plx("--store", other, "init", store=False)
    seq = plx("--store", other, "realize", f"{PIPELINE}:report", "--json", store=False)
    assert r.json() == seq.json()
    stored = os.listdir(os.path.join(worker_root, "store-v2"))
    assert sorted(n for n in stored if not n.startswith(".")) == sorted(
        ["FORMAT", *(d.split(":")[1] for d in r.json()["context"])]
    )
    assert plx("verify", "--json").json()["damaged"] == []


def test_realize_remote_without_dask_is_refused(plx: Run) -> None:
    """--remote alone is a usage error."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--remote", "/tmp/x", code=2)
    assert r.err.endswith("Error: --remote needs --dask: it is how Dask workers exchange builds\n")

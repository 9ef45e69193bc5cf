"""``pylightnix runs``: a sweep's runs side by side, the failed one and the matcher's picks."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
import sys
from typing import Any

from tests.cli.conftest import Run, clean_env
from tests.cli.conftest import sweep_accuracy as acc


def test_runs_json_lists_the_sweep(swept: Run) -> None:
    """6 runs with lr and accuracy; the failed one has its error and log tail; 3 picks marked."""
    rows = swept("runs", "train", "--json").json()
    assert len(rows) == 6
    ok = sorted((r["params"]["lr"], r["metrics"]["accuracy"]) for r in rows if r["status"] == "ok")
    assert ok == [
        (0.1, acc(0.1, 0)),
        (0.1, acc(0.1, 1)),
        (0.2, acc(0.2, 0)),
        (0.2, acc(0.2, 1)),
        (0.3, acc(0.3, 0)),
    ]
    (bad,) = [r for r in rows if r["status"] == "failed"]
    assert bad["params"] == {"data": "dataset", "lr": 0.3}
    assert bad["error"] == "FloatingPointError: loss is nan (lr=0.3, seed=1)"
    assert bad["log_tail"] == ["training lr=0.3 seed=0", "training lr=0.3 seed=1"]
    assert bad["chosen"] is False
    assert bad["metrics"] == {}
    picks = sorted((r["params"]["lr"], r["metrics"]["accuracy"]) for r in rows if r["chosen"])
    assert picks == [(0.1, acc(0.1, 1)), (0.2, acc(0.2, 1)), (0.3, acc(0.3, 0))]
    starts = [r["build_start"] for r in rows]
    assert starts == sorted(starts)
    assert all(r["duration"] >= 0 for r in rows)


def test_runs_table_marks_picks_and_failures(swept: Run) -> None:
    """The table shows the varying parameter and the metric, * for picks, then the failure."""
    lines = swept("runs", "train", "--sort", "accuracy").out.splitlines()
    assert lines[0].split() == ["RUN", "BUILT", "SECONDS", "STATUS", "lr", "accuracy"]
    rows = [ln.split() for ln in lines[1:7]]
    marks = [r[0] == "*" for r in rows]
    cells = [(r[-2], r[-1]) for r in rows]
    assert cells == [
        ("0.2", str(acc(0.2, 1))),
        ("0.2", str(acc(0.2, 0))),
        ("0.3", str(acc(0.3, 0))),
        ("0.1", str(acc(0.1, 1))),
        ("0.1", str(acc(0.1, 0))),
        ("0.3", "-"),
    ]
    assert marks == [True, False, True, True, False, False]
    assert rows[5][-3] == "failed"
    assert lines[7:] == [
        "",
        "1 failed:",
        f"  {_failed_rref(swept)}  FloatingPointError: loss is nan (lr=0.3, seed=1)",
        "    | training lr=0.3 seed=0",
        "    | training lr=0.3 seed=1",
        "  (pylightnix log RREF shows a whole log)",
    ]


def _failed_rref(plx: Run) -> str:
    (bad,) = [r for r in plx("runs", "train", "--json").json() if r["status"] == "failed"]
    return str(bad["rref"])


def test_runs_csv_and_columns(swept: Run) -> None:
    """--csv has one row per run; --param/--metric choose the columns."""
    out = swept("runs", "train", "--csv", "--param", "data", "--metric", "accuracy").out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "rref", "name", "status", "chosen", "build_start", "duration", "error",
        "params.data", "metrics.accuracy",
    ]  # fmt: skip
    assert len(rows) == 6
    assert {r["params.data"] for r in rows} == {"dataset"}
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "ok", "ok", "ok"]


def test_runs_bad_input(swept: Run) -> None:
    """Unknown names, columns and sort keys are refused, naming what exists."""
    err = swept("runs", "trian", code=1).err
    assert "no runs of 'trian' in the store at " in err
    assert "(stage names there: dataset, train): realize it first" in err
    assert swept("runs", "train", "--param", "lrr", code=1).err.strip() == (
        "Error: no run has a parameter 'lrr' (its parameters: data, lr)"
    )
    assert swept("runs", "train", "--metric", "loss", code=1).err.strip() == (
        "Error: no run has a metric 'loss' (its metrics: accuracy)"
    )
    assert swept("runs", "train", "--sort", "f1", code=1).err.strip() == (
        "Error: no run has a metric or parameter 'f1' to sort by (metrics: accuracy; "
        "parameters: data, lr)"
    )
    assert (
        "--json and --csv exclude each other"
        in swept("runs", "train", "--json", "--csv", code=2).err
    )


def _bad(plx: Run) -> dict[str, object]:
    (bad,) = [r for r in plx("runs", "train", "--json").json() if r["status"] == "failed"]
    return bad  # type: ignore[no-any-return]


def test_failed_run_in_show_log_ls_find(swept: Run) -> None:
    """show, log, ls and find mark the failed run, with its error and log; no temp files show."""
    bad = _bad(swept)
    rref, dref = str(bad["rref"]), str(bad["dref"])
    rec = swept("show", rref, "--json").json()
    assert (rec["status"], rec["error"]) == ("failed", bad["error"])
    assert rec["log_tail"] == ["training lr=0.3 seed=0", "training lr=0.3 seed=1"]
    assert [f["path"] for f in rec["files"]] == []  # the log is kept as build.log, not a file
    text = swept("show", rref).out.splitlines()
    assert "status:  FAILED FloatingPointError: loss is nan (lr=0.3, seed=1)" in text
    assert "  | training lr=0.3 seed=1" in text
    shown = swept("show", dref).out
    assert f"{rref}  built " in shown
    assert shown.count("FAILED FloatingPointError: loss is nan (lr=0.3, seed=1)") == 1
    assert swept("log", rref).out == "training lr=0.3 seed=0\ntraining lr=0.3 seed=1\n"
    rows = {r["dref"]: r for r in swept("ls", "--json").json()}
    assert (rows[dref]["realizations"], rows[dref]["failed"]) == (2, 1)
    assert sorted(r["failed"] for r in rows.values()) == [0, 0, 0, 1]
    assert "2 (1 failed)" in swept("ls", "--name", "train").out
    found = swept("find", "--name", "train").out.splitlines()
    assert len(found) == 6
    assert [ln for ln in found if "FAILED" in ln] == [f"{rref}  FAILED {bad['error']}"]
    assert swept("find", "--status", "failed", "--json").json() == [rref]
    assert rref not in swept("find", "--status", "ok", "--json").json()
    assert len(swept("find", "--status", "ok", "--json").json()) == 6


def test_cat_of_a_stage_with_several_runs_reads_the_pick(swept: Run) -> None:
    """cat DREF reads the realization the matcher picked, not an error about several."""
    picks = [r for r in swept("runs", "train", "--json").json() if r["chosen"]]
    best = max(picks, key=lambda r: r["metrics"]["accuracy"])
    out = swept("cat", best["dref"], "accuracy.txt").out
    assert float(out) == best["metrics"]["accuracy"]


def test_keep_going_reports_a_failed_stage(plx: Run) -> None:
    """realize --keep-going records a failing stage, marks it and exits 1 naming `runs`."""
    from tests.cli.conftest import PIPELINE

    plx("init")
    r = plx("realize", f"{PIPELINE}:broken", "--keep-going", "--no-progress", "--json", code=1)
    rec = r.json()
    ((d, err),) = rec["failed"].items()
    assert err == "RuntimeError: the realizer gave up"
    assert rec["targets"][d] == [_bad_of(plx, "broken")]
    assert r.err.strip() == (
        "Error: 1 stage(s) failed and were recorded as failed runs: see `pylightnix runs broken`"
    )
    assert plx("log", rec["targets"][d][0]).out == "about to fail\n"
    usage = plx("realize", f"{PIPELINE}:broken", "--keep-going", "--jobs", "2", code=2).err
    assert "--keep-going builds one stage at a time" in usage


def _bad_of(plx: Run, name: str) -> str:
    (bad,) = [r for r in plx("runs", name, "--json").json() if r["status"] == "failed"]
    return str(bad["rref"])


def test_explain_names_lr_old_and_new(swept: Run) -> None:
    """explain of a sweep with a new learning rate says lr's old and new value."""
    from tests.cli.conftest import SWEEP

    exps = swept("explain", f"{SWEEP}:sweep", "--arg", "lrs=[0.1, 0.5]", "--json").json()
    assert [(e["name"], e["decision"]) for e in exps] == [
        ("dataset", "reuse"),
        ("train", "reuse"),
        ("train", "build"),
    ]
    new = exps[2]
    assert new["details"]["changes"] == [
        {"key": "lr", "old": 0.3, "new": 0.5, "text": "lr: 0.3 -> 0.5"}
    ]
    assert new["reason"].endswith(": lr: 0.3 -> 0.5")
    table = swept("explain", f"{SWEEP}:sweep", "--arg", "lrs=[0.5]").out
    assert ": lr: 0.3 -> 0.5" in table


_MASKS = (
    (re.compile(r"rref:[0-9a-f]{32}-[0-9a-f]{32}-[\w-]+"), "RREF"),
    (re.compile(r"dref:[0-9a-f]{32}-[\w-]+"), "DREF"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "TIME"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "HASH8"),
    (re.compile(r"(?<=\s)\d+\.\d(?=\s)"), "S.S"),  # the SECONDS column
)


def _mask(text: str) -> str:
    for rx, sub in _MASKS:
        text = rx.sub(sub, text)
    return text


def test_ml_pipeline_doc_console(tmp_path: Any) -> None:
    """docs/ml-pipeline.md: its script runs, then each console command prints what the page
    shows (refs, times and durations masked)."""
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "ml-pipeline.md")
    with open(doc) as f:
        text = f.read()
    script = os.path.join(tmp_path, "ml_pipeline.py")
    with open(script, "w") as f:
        f.write("\n".join(re.findall(r"```python\n(.*?)```", text, re.S)))
    env = {**clean_env(), "PYLIGHTNIX_ROOT": os.path.join(tmp_path, "root")}
    out = subprocess.run(
        [sys.executable, script], check=True, capture_output=True, text=True, env=env,
        cwd=str(tmp_path), timeout=300,
    ).stdout  # fmt: skip
    assert "* 0.05 -0.0111 ok \n" in out
    assert "  5.0 - failed FloatingPointError: training diverged (lr=5.0)\n" in out
    assert re.search(
        r"\ntrain: build: no realization of this config exists; changed from the closest stored "
        r"'train' \(dref:[0-9a-f]{32}-train\): lr: 0.05 -> 0.2\n",
        out,
    )
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        cmd, _, expected = block.partition("\n")
        assert cmd.startswith("$ pylightnix ")
        p = subprocess.run(
            [sys.executable, "-m", "pylightnix", *shlex.split(cmd[len("$ pylightnix ") :])],
            check=True, capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert _mask(p.stdout) == _mask(expected)

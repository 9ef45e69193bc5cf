"""Tests of ui/api.py through the HTTP API: the records the pages draw, paginated."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from pylightnix import (
    Build,
    RequestError,
    StorageSettings,
    build_outpath,
    build_wrapper,
    du,
    fsinit,
    instantiate,
    linkrref,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    rreflog,
    runs,
)
from pylightnix.refs import dref_name, rref2dref
from pylightnix.store.layout import dref2path
from pylightnix.store.query import drefrrefs
from pylightnix.ui import api
from tests.helpers import listing
from tests.ui.conftest import Client, Swept, serve
from tests.ui.slow import slow_build
from tests.ui.sweep import LRS, accuracy, dataset, realize_sweep


def _until(what: str, get: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """Ask ``get`` until ``ok`` holds (at most 60 s); fail naming ``what``."""
    deadline = time.monotonic() + 60
    while True:
        v = get()
        if ok(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last answer: {v!r}")
        time.sleep(0.02)


def test_stages_are_paginated_and_filtered(client: Client, swept: Swept) -> None:
    """Stages come sorted by name, a page at a time, filtered by a name substring."""
    all_ = client.get("/api/stages").json()
    assert all_["total"] == 7
    assert [x["name"] for x in all_["items"]] == ["dataset", "report"] + ["train"] * 5
    assert all_["items"][1]["dref"] == swept.report
    assert sorted(x["dref"] for x in all_["items"][2:]) == sorted(swept.trains)
    assert [x["realizations"] for x in all_["items"]] == [1, 1, 2, 2, 2, 2, 2]
    p = client.get("/api/stages?offset=2&limit=3").json()
    assert (p["total"], p["offset"], p["limit"]) == (7, 2, 3)
    assert p["items"] == all_["items"][2:5]
    q = client.get("/api/stages?q=data").json()
    assert (q["total"], [x["name"] for x in q["items"]]) == (1, ["dataset"])
    assert client.get("/api/stages?q=nomatch").json()["items"] == []


def test_dref_record_counts_failed_realizations(client: Client, swept: Swept) -> None:
    """A derivation lists its realizations with status; the diverged one is failed."""
    d = swept.trains[LRS.index(1.0)]
    r = client.get(f"/api/dref/{d}").json()
    assert (r["name"], r["total"], r["failed"]) == ("train", 2, 1)
    assert r["config"]["lr"] == 1.0
    assert r["deps"] == [str(x) for x in instantiate(dataset, S=swept.S)[1].targets]
    assert sorted(x["failed"] for x in r["realizations"]) == [False, True]
    assert [x["rref"] for x in r["realizations"]] == drefrrefs(d, swept.S)
    one = client.get(f"/api/dref/{d}?offset=1&limit=1").json()
    assert one["realizations"] == r["realizations"][1:]


def test_rref_record_of_a_failed_run_has_its_failure(client: Client, swept: Swept) -> None:
    """A failed realization's record carries the exception type and message."""
    d = swept.trains[LRS.index(1.0)]
    failed = [x["rref"] for x in client.get(f"/api/dref/{d}").json()["realizations"] if x["failed"]]
    r = client.get(f"/api/rref/{failed[0]}").json()
    assert r["failure"]["error"] == "ValueError"
    assert r["failure"]["message"] == "diverged at lr=1.0 seed=1"
    assert r["dref"] == d
    assert list(r["context"]) == [str(x) for x in instantiate(dataset, S=swept.S)[1].targets]


def test_files_record_and_log_of_a_realization(client: Client, swept: Swept) -> None:
    """Files are listed in path order; the log reads whole, and again from an offset."""
    rref = runs("dataset", S=swept.S)[0].rref
    f = client.get(f"/api/rref/{rref}/files").json()
    assert [(x["path"], x["kind"]) for x in f["items"]] == [
        ("README.txt", "file"),
        ("chart.png", "file"),
        ("data.csv", "file"),
    ]
    assert client.get(f"/api/rref/{rref}/files?offset=1&limit=1").json()["items"] == f["items"][1:2]
    log = client.get(f"/api/rref/{rref}/log").json()
    assert log == {
        "text": rreflog(rref, swept.S),
        "next": 19,
        "size": 19,
        "exists": True,
        "running": False,
    }
    assert log["text"] == "generating 50 rows\n"
    assert client.get(f"/api/rref/{rref}/log?offset=11").json()["text"] == "50 rows\n"


def _silent(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("quiet")


def test_log_of_a_silent_realization_reads_empty(S: StorageSettings) -> None:
    """A build that printed nothing has no build.log: its record says so, its log is empty."""
    rref = realize1(
        instantiate(
            lambda r=None: mkdrv({"name": "mute"}, match_only(), build_wrapper(_silent), r), S=S
        )
    )
    assert api.rref_record(rref, S)["has_log"] is False
    assert api.rref_log(rref, S, 0) == {
        "text": "",
        "next": 0,
        "size": 0,
        "exists": False,
        "running": False,
    }


def test_log_chunk_reads_at_most_a_chunk(tmp_path: Any) -> None:
    """A long log comes in chunks that end on a character and continue where they stopped."""
    p = str(tmp_path / "log")
    text = "ü" * (api.LOG_CHUNK // 2 + 10)
    with open(p, "w") as f:
        f.write(text)
    a = api.log_chunk(p, 0)
    b = api.log_chunk(p, a["next"])
    assert a["next"] == api.LOG_CHUNK
    assert a["text"] + b["text"] == text
    assert b["next"] == a["size"] == len(text.encode())


def test_diff_of_two_seeds(client: Client, swept: Swept) -> None:
    """Two outputs of one derivation: same config and context, different metric files."""
    rs = runs(swept.trains[0], S=swept.S)
    d = client.get(f"/api/diff?a={rs[0].rref}&b={rs[1].rref}").json()
    assert d["config"] == {"added": [], "removed": [], "changed": []}
    assert d["context_same"] is True
    assert d["files"] == {
        "only_in_a": [],
        "only_in_b": [],
        "changed": ["accuracy.txt", "metrics.json"],
    }
    other = runs(swept.trains[1], S=swept.S)[0]
    d2 = client.get(f"/api/diff?a={rs[0].rref}&b={other.rref}").json()
    assert d2["config"]["changed"] == [{"key": "lr", "old": LRS[0], "new": LRS[1]}]


def test_size_matches_du_and_roots_list_links(swept: Swept, tmp_path: Any) -> None:
    """The size record agrees with du(); a result link shows as a root."""
    with serve(swept.S) as c:
        s = c.get("/api/size").json()
        u = du(swept.S)
        assert (s["total"], s["derivations"], s["realizations"]) == (u.total, 7, 12)
        assert s["largest"][0]["name"] == "dataset"
        assert c.get("/api/roots").json() == {"items": []}


def test_roots_record_shows_a_registered_link(S: StorageSettings, tmp_path: Any) -> None:
    """A registered result link is listed with the realization it keeps alive."""
    rref = realize1(instantiate(dataset, S=S))
    link = linkrref(rref, str(tmp_path), S=S)
    with serve(S) as c:
        got = c.get("/api/roots").json()["items"]
        assert [(x["link"], x["rref"], x["stale"]) for x in got] == [(link, rref, False)]
        os.unlink(link)
        got = c.get("/api/roots").json()["items"]
        assert [(x["link"], x["rref"], x["stale"]) for x in got] == [(link, None, True)]


def test_runs_record_is_the_runs_api(client: Client, swept: Swept) -> None:
    """The runs API answers what runs() says, with the union of parameters and metrics."""
    r = client.get("/api/runs/train").json()
    assert r["runs"] == [x.to_json() for x in runs("train", S=swept.S)]
    assert (r["params"], r["metrics"]) == (["data", "epochs", "lr"], ["accuracy", "loss"])
    chosen = sorted((x["params"]["lr"], x["metrics"]["accuracy"]) for x in r["runs"] if x["chosen"])
    assert chosen == [(lr, accuracy(lr, 0)) for lr in LRS]
    assert [x["status"] for x in r["runs"]].count("failed") == 1
    by_dref = client.get(f"/api/runs/{swept.trains[0]}").json()
    assert {x["dref"] for x in by_dref["runs"]} == {swept.trains[0]}


def test_runs_record_refuses_what_is_no_stage(client: Client) -> None:
    """A 'what' that is neither a name nor a DRef is a 400 naming it."""
    a = client.get("/api/runs/a%20b")
    assert (a.status, a.json()["error"]) == (
        400,
        "'a b' is neither a stage name nor a DRef (dref:...)",
    )


def test_runs_record_without_the_runs_api(swept: Swept, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pylightnix.runs cannot be imported, the runs API says so with 501."""
    monkeypatch.setitem(sys.modules, "pylightnix.runs", None)
    with pytest.raises(RequestError) as e:
        api.runs_record("train", swept.S)
    assert (e.value.status, str(e.value)) == (  # type: ignore[attr-defined]
        501,
        "this pylightnix has no runs API (pylightnix.runs): upgrade pylightnix",
    )


def test_a_running_build_log_is_read_live(tmp_path: Any) -> None:
    """A build in another process shows in /api/building; its log grows while the test watches."""
    root = str(tmp_path / "plx")
    S = fsinit(mkSS(root))
    gate = str(tmp_path / "gate")
    with slow_build(root, gate) as child, serve(S) as c:
        get = c.get
        items = _until("the build", lambda: get("/api/building").json()["items"], bool)
        assert [(x["name"], x["pid"]) for x in items] == [("slow", child.pid)]
        bid = items[0]["id"]
        url = f"/api/building/{bid}/log"
        first = _until(
            "step 1",
            lambda: get(url).json(),
            lambda v: v["text"] == "step 1\n",
        )
        assert (first["running"], first["next"]) == (True, 7)
        more = c.get(f"/api/building/{bid}/log?offset=7").json()
        assert (more["text"], more["running"]) == ("", True)
        with open(gate, "w"):
            pass
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        rref = out.strip()
        done = c.get(f"/api/building/{bid}/log?offset=7").json()
        assert (done["running"], done["exists"]) == (False, False)
        assert c.get("/api/building").json() == {"items": []}
        assert c.get(f"/api/rref/{rref}/log").json()["text"] == "step 1\nstep 2\n"
        assert str(dref_name(rref2dref(rref))) == "slow"
        bad = c.get("/api/building/..%2Fx/log")
        assert (bad.status, bad.json()["error"]) == (
            400,
            "'../x' is not a running build's id (see /api/building for them)",
        )


def test_reading_every_api_leaves_the_store_as_it_was(swept: Swept) -> None:
    """Every record the pages use is read without changing a byte of the store."""
    before = listing(swept.S.root)
    rs = runs("train", S=swept.S)
    d = swept.trains[0]
    paths = [
        "/api/stages",
        f"/api/dref/{d}",
        f"/api/graph/{d}",
        f"/api/graph/{rs[0].rref}",
        "/api/runs/train",
        f"/api/rref/{rs[0].rref}",
        f"/api/rref/{rs[0].rref}/files",
        f"/api/rref/{rs[0].rref}/log",
        f"/api/rref/{rs[0].rref}/preview/metrics.json",
        f"/api/diff?a={rs[0].rref}&b={rs[1].rref}",
        "/api/size",
        "/api/roots",
        "/api/building",
    ]
    with serve(swept.S) as c:
        for p in paths:
            assert c.get(p).status == 200, p
    assert listing(swept.S.root) == before


def test_runs_json_is_reused_until_a_derivation_changes(S: StorageSettings) -> None:
    """The runs record is computed again after new runs; reused while nothing changed."""
    trains, _ = realize_sweep(S)
    past = time.time() - 10

    def age() -> None:
        for d in trains:
            os.utime(dref2path(d, S), (past, past))

    age()
    with serve(S) as c:
        srv = c.server
        first = srv.runs_json("train")
        assert srv.runs_json("train") is first
        assert json.loads(first)["runs"] == [x.to_json() for x in runs("train", S=S)]
        trains += realize_sweep(S, (0.5,))[0]
        fresh = srv.runs_json("train")
        assert len(json.loads(fresh)["runs"]) == 12
        # Changed within the last two seconds: not reused yet.
        assert srv.runs_json("train") is not fresh
        past -= 10
        age()
        again = srv.runs_json("train")
        assert srv.runs_json("train") is again
        assert again == fresh


def test_stage_index_is_reused_until_the_storage_folder_changes(S: StorageSettings) -> None:
    """The sorted stage index is listed again after a new derivation; reused meanwhile."""
    realize_sweep(S)
    past = time.time() - 10
    os.utime(S.storage, (past, past))
    with serve(S) as c:
        srv = c.server
        first = srv.stage_index()
        assert srv.stage_index() is first
        assert len(first) == 7
        instantiate(dataset, rows=3, S=S)
        assert c.get("/api/stages?q=dataset").json()["total"] == 2
        os.utime(S.storage, (past - 10, past - 10))
        again = srv.stage_index()
        assert srv.stage_index() is again
        assert len(again) == 8
        assert api.settled_mtime(os.path.join(S.storage, "missing")) is None

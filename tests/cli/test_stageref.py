"""``--arg`` checked up front and ``--set`` for nested stages (realize and explain)."""

from __future__ import annotations

from tests.cli.conftest import PIPELINE, SWEEP, Run


def test_arg_of_the_wrong_kind_is_refused_before_anything_runs(plx: Run) -> None:
    """A string for a number, or a value for a dependency, is refused; the store stays empty."""
    plx("init")
    err = plx("realize", f"{PIPELINE}:report", "--arg", "lr=fast", code=1).err
    assert err == (
        f"Error: --arg lr=\"fast\": parameter 'lr' of stage {PIPELINE}:report takes a number "
        "(default 0.1), got a string\n"
    )
    err = plx("realize", f"{SWEEP}:train", "--arg", 'data={"n": 5}', code=1).err
    assert err == (
        f"Error: parameter 'data' of stage {SWEEP}:train is a dependency (a stage), not a "
        "value: set that stage's own parameters with --set STAGE.KEY=VALUE\n"
    )
    err = plx("explain", f"{SWEEP}:sweep", "--arg", "lrs=0.1", code=1).err
    assert err == (
        f"Error: --arg lrs=0.1: parameter 'lrs' of stage {SWEEP}:sweep takes a list "
        "(default [0.1, 0.2, 0.3]), got a number\n"
    )
    assert plx("ls", "--json").json() == []


def test_set_changes_a_nested_stage(plx: Run) -> None:
    """--set data.n=7 changes the nested data stage and so its users; unprefixed keys work
    when one stage has them."""
    plx("init")
    r = plx("realize", f"{PIPELINE}:report", "--set", "data.n=7", "--json", "--no-progress").json()
    names = sorted(d.rsplit("-", 1)[1] for d in r["context"])
    assert names == ["data", "report", "train"]
    (data,) = [d for d in r["context"] if d.endswith("-data")]
    assert plx("show", data, "--json").json()["config"]["n"] == 7
    r2 = plx("explain", f"{PIPELINE}:report", "--set", "data.n=7", "--set", "lr=0.5", "--json")
    r2 = r2.json()
    assert [(e["name"], e["decision"]) for e in r2] == [
        ("data", "reuse"), ("train", "build"), ("report", "build"),
    ]  # fmt: skip
    assert r2[1]["details"]["changes"][0]["text"] == "lr: 0.1 -> 0.5"


def test_bad_set_is_refused_and_writes_nothing(plx: Run) -> None:
    """Unknown stage or key, a dependency, a wrong kind and an ambiguous key: clear errors."""
    plx("init")
    ref = f"{PIPELINE}:report"
    assert plx("explain", ref, "--set", "dta.n=7", code=1).err == (
        "Error: --set dta.n=7: no stage of this closure has that key or name "
        "(stage names: data, report, train)\n"
    )
    assert plx("explain", ref, "--set", "data.m=7", code=1).err == (
        "Error: --set data.m=7: stage 'data' has no key 'm' (its keys: n)\n"
    )
    assert plx("explain", ref, "--set", "train.data=x", code=1).err == (
        "Error: --set train.data=x: key 'data' of stage 'train' is a dependency; set that "
        "stage's own keys instead (--set ITS_NAME.KEY=VALUE)\n"
    )
    assert plx("explain", ref, "--set", "data.n=many", code=1).err == (
        "Error: --set data.n=many: key 'n' of stage 'data' is a number (100), got a string\n"
    )
    assert plx("explain", f"{SWEEP}:two", "--set", "lr=0.2", code=1).err == (
        "Error: --set lr=0.2 is ambiguous: stages finetune, train all have it; name one, "
        "e.g. --set finetune.lr=0.2\n"
    )
    assert plx("ls", "--json").json() == []
    exps = plx("explain", f"{SWEEP}:two", "--set", "finetune.lr=0.2", "--json").json()
    assert [(e["name"], e["decision"]) for e in exps] == [
        ("dataset", "build"), ("train", "build"), ("finetune", "build"),
    ]  # fmt: skip
    (ft,) = [e["dref"] for e in exps if e["name"] == "finetune"]
    assert plx("show", ft, "--json").json()["config"]["lr"] == 0.2

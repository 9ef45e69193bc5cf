"""``pylightnix ls``."""

from __future__ import annotations

from tests.cli.conftest import PIPELINE, Built, Run


def test_ls_json_lists_derivations_with_counts_and_sizes(built: Built, plx: Run) -> None:
    """Each derivation has its name, one realization, a build time and (--size) its files' bytes."""
    assert [sorted(r) for r in plx("ls", "--json").json()] == [
        ["dref", "failed", "latest_build", "name", "realizations"]
    ] * 3
    rows = plx("ls", "--size", "--json").json()
    assert [(r["name"], r["dref"], r["realizations"]) for r in rows] == [
        ("data", built.drefs["data"], 1),
        ("report", built.drefs["report"], 1),
        ("train", built.drefs["train"], 1),
    ]
    du = {r["rref"]: r["size"] for r in plx("du", "--json").json()["realizations"]}
    assert [r["size"] for r in rows] == [du[built.rrefs[n]] for n in ("data", "report", "train")]
    assert all(isinstance(r["latest_build"], float) for r in rows)


def test_ls_filters_by_name_and_age(built: Built, plx: Run) -> None:
    """--name is a glob on the name; --newer keeps derivations built within the age."""
    assert [r["name"] for r in plx("ls", "--name", "tr*", "--json").json()] == ["train"]
    assert len(plx("ls", "--newer", "1h", "--json").json()) == 3


def test_ls_newer_leaves_out_unbuilt_derivations(built: Built, plx: Run) -> None:
    """A derivation never realized has no build time and is not 'newer' than anything."""
    plx("explain", f"{PIPELINE}:report", "--arg", "lr=0.7")
    names = [r["name"] for r in plx("ls", "--json").json()]
    assert names == ["data", "report", "report", "train", "train"]
    assert [r["name"] for r in plx("ls", "--newer", "1h", "--json").json()] == [
        "data", "report", "train",
    ]  # fmt: skip


def test_ls_table(built: Built, plx: Run) -> None:
    """The table has a header and one line per derivation; --size adds sizes for people."""
    lines = plx("ls").out.splitlines()
    assert lines[0].split() == ["NAME", "REALIZATIONS", "LATEST", "BUILD", "DREF"]
    assert [line.split()[0] for line in lines[1:]] == ["data", "report", "train"]
    assert [line.split()[1] for line in lines[1:]] == ["1", "1", "1"]
    assert lines[1].split()[-1] == built.drefs["data"]
    lines = plx("ls", "--size").out.splitlines()
    assert lines[0].split() == ["NAME", "REALIZATIONS", "LATEST", "BUILD", "SIZE", "DREF"]
    assert [line.split()[0] for line in lines[1:]] == ["data", "report", "train"]
    assert lines[1].split()[-1] == built.drefs["data"]
    assert lines[1].split()[-2] == "B"  # data's few hundred bytes, in bytes


def test_ls_on_an_empty_store(plx: Run) -> None:
    """An empty store lists an empty JSON list and a header alone."""
    plx("init")
    assert plx("ls", "--json").out == "[]\n"
    assert plx("ls").out.split() == ["NAME", "REALIZATIONS", "LATEST", "BUILD", "DREF"]


def test_ls_bad_age_is_a_usage_error(built: Built, plx: Run) -> None:
    """An age without a unit exits 2 saying how to write one."""
    assert (
        "'5' is not an age: use a number and a unit s/m/h/d/w"
        in plx("ls", "--newer", "5", code=2).err
    )

"""``pylightnix pull`` and ``pylightnix realize --substituter/--push``: the two-machine workflow."""

from __future__ import annotations

import os

from tests.cli.conftest import PIPELINE, Built, Run


def test_pull_into_another_store(built: Built, plx: Run, tmp_path: object) -> None:
    """A pushed closure pulls into a fresh store with equal RRefs and files."""
    cache = os.path.join(str(tmp_path), "cache")
    plx("push", cache, built.rrefs["report"], "--no-progress")
    other = os.path.join(str(tmp_path), "other")
    plx("--store", other, "init", store=False)
    res = plx("--store", other, "pull", cache, built.rrefs["report"], "--json", store=False)
    assert sorted(res.json()["transferred"]) == sorted(built.rrefs.values())
    assert plx("--store", other, "cat", built.rrefs["train"], "weights/model.txt",
               store=False).out == "model(lr=0.1, rows=100)\n"  # fmt: skip


def test_pull_refuses_untrusted_claims(built: Built, plx: Run, tmp_path: object) -> None:
    """--trusted-key refuses a claim signed by another key; the exit code is 1."""
    t = str(tmp_path)
    cache = os.path.join(t, "cache")
    plx("key", "generate", "ci-1", "--secret", os.path.join(t, "ci.sec"), store=False)
    other_pub = plx("key", "generate", "dev-1", "--secret", os.path.join(t, "dev.sec"),
                    store=False).out.strip()  # fmt: skip
    plx("push", cache, built.rrefs["data"], "--sign", os.path.join(t, "ci.sec"), "--no-progress")
    other = os.path.join(t, "other")
    plx("--store", other, "init", store=False)
    r = plx("--store", other, "pull", cache, built.rrefs["data"], "--trusted-key", other_pub,
            "--no-progress", store=False, code=1)  # fmt: skip
    assert r.err == (
        f"Error: remote {cache}: the claim of {built.rrefs['data']} is refused: it is signed "
        "only by keys that are not trusted (ci-1); nothing was pulled\n"
    )


def test_realize_substitutes_what_another_store_pushed(plx: Run, tmp_path: object) -> None:
    """Store A realizes with --push; store B realizes with --substituter and builds nothing."""
    t = str(tmp_path)
    cache = os.path.join(t, "cache")
    a, b = os.path.join(t, "a"), os.path.join(t, "b")
    for st in (a, b):
        plx("--store", st, "init", store=False)
    ra = plx("--store", a, "realize", f"{PIPELINE}:report", "--push", cache, store=False)
    assert "built 3" not in ra.err and "3 built" in ra.err
    rb = plx("--store", b, "realize", f"{PIPELINE}:report", "--substituter", cache, store=False)
    assert rb.out == ra.out
    assert "done   3 stages: 0 built, 3 reused" in rb.err

"""``pylightnix push``."""

from __future__ import annotations

import json
import os
import re

from tests.cli.conftest import Built, Run
from tests.remote.conftest import new_bucket, s3_endpoint, s3_options

__all__ = ["s3_endpoint"]  # the fixture, imported for its name


def test_push_sends_the_closure_and_prints_targets(
    built: Built, plx: Run, tmp_path: object
) -> None:
    """Pushing the report sends its three-stage closure; the RRef goes to stdout."""
    cache = os.path.join(str(tmp_path), "cache")
    r = plx("push", cache, built.rrefs["report"], "--no-progress")
    assert r.out == built.rrefs["report"] + "\n"
    pattern = (
        rf"pushed 3 realizations \(.+\) and 3 configs to {re.escape(cache)} "
        r"in \d+\.\ds; 0 already there\n"
    )
    assert re.fullmatch(pattern, r.err), r.err


def test_push_json_says_what_was_sent_and_skipped(built: Built, plx: Run, tmp_path: object) -> None:
    """--json prints the transfer record; a second push skips everything."""
    cache = os.path.join(str(tmp_path), "cache")
    first = plx("push", cache, built.rrefs["train"], "--json", "--no-progress").json()
    assert first["transferred"] == [built.rrefs["data"], built.rrefs["train"]]
    again = plx("push", cache, built.rrefs["report"], "--json", "--no-progress").json()
    assert (again["transferred"], again["skipped"]) == (
        [built.rrefs["report"]],
        [built.rrefs["data"], built.rrefs["train"]],
    )
    assert again["direction"] == "push" and again["remote"] == cache
    assert again["bytes"] > 0


def test_push_shows_byte_progress(built: Built, plx: Run, tmp_path: object) -> None:
    """With progress on, stderr carries push lines with bytes and a rate."""
    cache = os.path.join(str(tmp_path), "cache")
    r = plx("push", cache, built.rrefs["data"])
    lines = [x for x in r.err.splitlines() if "] push   " in x]
    assert lines, r.err
    assert lines[0].split("] push   ")[1].startswith(cache + "  ")
    assert lines[0].endswith("/s")


def test_push_to_s3_with_storage_options(
    built: Built, plx: Run, tmp_path: object, s3_endpoint: str
) -> None:
    """--option KEY=VALUE reaches fsspec: a push to a local S3 server works."""
    bucket = new_bucket(s3_endpoint)
    opts = [f"--option={k}={json.dumps(v) if not isinstance(v, str) else v}"
            for k, v in s3_options(s3_endpoint).items()]  # fmt: skip
    res = plx("push", f"s3://{bucket}/c", built.rrefs["report"], *opts, "--json").json()
    assert len(res["transferred"]) == 3


def test_push_to_http_is_refused(built: Built, plx: Run) -> None:
    """A read-only remote is a one-line error with exit code 1."""
    r = plx("push", "http://127.0.0.1:9/c", built.rrefs["data"], code=1)
    assert r.err == (
        "Error: remote http://127.0.0.1:9/c is read-only (http:// serves a pushed cache): "
        "push to the folder or bucket it serves instead\n"
    )

"""Substitution in realize: reuse what another store pushed instead of building it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pylightnix import (
    ProgressEvent,
    StorageSettings,
    allrrefs,
    instantiate,
    realize,
    realize1,
    rref2path,
)
from pylightnix.errors import OptionError, RemoteError
from pylightnix.remote import generate_key, open_remote, push
from pylightnix.remote.substitute import ENV_SUBSTITUTERS, ENV_TRUSTED_KEYS, make_substituters
from pylightnix.types import RRef
from tests.helpers import listing
from tests.remote import stages
from tests.remote.conftest import Backend


def realize_counting(S: StorageSettings, **kw: Any) -> tuple[dict[str, RRef], list[str]]:
    """Realize the 3-stage pipeline; its RRefs by stage name and the names of stages built."""
    events: list[ProgressEvent] = []
    _, _, ctx = realize(instantiate(stages.report, S=S), progress=events.append, **kw)
    built = [e.name for e in events if e.kind == "build"]
    return {d.rsplit("-", 1)[1]: rs[0] for d, rs in ctx.items()}, built


class TestSubstitution:
    """Substitution against each backend."""

    def test_store_b_builds_nothing_that_store_a_pushed(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """A pushes while realizing (push_to); B realizes the same pipeline, builds nothing,
        and gets equal RRefs with identical files."""
        ra, built_a = realize_counting(S, push_to=backend.writer)
        assert built_a == ["data", "train", "report"]
        rb, built_b = realize_counting(SB, substituters=[backend.reader])
        assert (rb, built_b) == (ra, [])
        for r in ra.values():
            assert listing(rref2path(r, S)) == listing(rref2path(r, SB))

    def test_only_missing_stages_are_built(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """With only the first stage on the remote, B substitutes it and builds the rest."""
        ra, _ = realize_counting(S)
        push([ra["data"]], backend.writer, S=S)
        rb, built = realize_counting(SB, substituters=[backend.reader])
        assert (rb, built) == (ra, ["train", "report"])

    def test_signed_claims_substitute_with_trusted_keys(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """Claims signed by a trusted key are substituted."""
        pub = generate_key("ci-1", str(tmp_path / "ci.sec"))
        ra, _ = realize_counting(S)
        push([ra["report"]], backend.writer, S=S, sign_with=str(tmp_path / "ci.sec"))
        rb, built = realize_counting(SB, substituters=[backend.reader], trusted_keys=[pub])
        assert (rb, built) == (ra, [])

    def test_unsigned_claims_are_skipped_with_a_warning(
        self,
        backend: Backend,
        S: StorageSettings,
        SB: StorageSettings,
        tmp_path: Any,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """With trusted keys, unsigned claims are not substituted: a warning, then a build."""
        pub = generate_key("ci-1", str(tmp_path / "ci.sec"))
        ra, _ = realize_counting(S)
        push([ra["report"]], backend.writer, S=S)
        with caplog.at_level(logging.WARNING, logger="pylightnix.remote"):
            rb, built = realize_counting(SB, substituters=[backend.reader], trusted_keys=[pub])
        assert (rb, built) == (ra, ["data", "train", "report"])
        msgs = [r.getMessage() for r in caplog.records]
        assert msgs[0].startswith(
            f"substituter {backend.reader.url}: skipping {ra['data']}: remote "
            f"{backend.reader.url}: the claim of {ra['data']} is unsigned"
        )
        assert len(msgs) == 3


def test_unreachable_substituter_is_a_warning_and_a_local_build(
    S: StorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A substituter nobody listens on is warned about once, and everything is built."""
    with caplog.at_level(logging.WARNING, logger="pylightnix.remote"):
        _, built = realize_counting(S, substituters=["http://127.0.0.1:9/cache"])
    assert built == ["data", "train", "report"]
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1
    assert msgs[0].startswith(
        "substituter http://127.0.0.1:9/cache is unreachable (remote http://127.0.0.1:9/cache: "
        "listing drv/"
    )
    assert msgs[0].endswith("; building locally")


def test_substituters_come_from_the_environment(
    S: StorageSettings, SB: StorageSettings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PYLIGHTNIX_SUBSTITUTERS and $PYLIGHTNIX_TRUSTED_KEYS apply when realize names none."""
    pub = generate_key("ci-1", str(tmp_path / "ci.sec"))
    cache = str(tmp_path / "cache")
    ra, _ = realize_counting(S)
    push([ra["report"]], cache, S=S, sign_with=str(tmp_path / "ci.sec"))
    monkeypatch.setenv(ENV_SUBSTITUTERS, f"http://127.0.0.1:9/none  {cache}")
    monkeypatch.setenv(ENV_TRUSTED_KEYS, pub)
    rb, built = realize_counting(SB)
    assert (rb, built) == (ra, [])


def test_explicit_empty_substituters_beat_the_environment(
    S: StorageSettings, SB: StorageSettings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """substituters=[] turns substitution off whatever the environment says."""
    cache = str(tmp_path / "cache")
    ra, _ = realize_counting(S)
    push([ra["report"]], cache, S=S)
    monkeypatch.setenv(ENV_SUBSTITUTERS, cache)
    _, built = realize_counting(SB, substituters=[])
    assert built == ["data", "train", "report"]


def test_forced_and_dry_runs_do_not_substitute(
    S: StorageSettings, SB: StorageSettings, tmp_path: Any
) -> None:
    """force_rebuild builds anyway; a dry run pulls nothing."""
    cache = str(tmp_path / "cache")
    ra, _ = realize_counting(S)
    push([ra["report"]], cache, S=S)
    _, _, ctx = realize(instantiate(stages.report, S=SB), substituters=[cache], dry_run=True)
    assert (ctx, list(allrrefs(SB))) == ({}, [])
    _, built = realize_counting(SB, substituters=[cache], force_rebuild=True)
    assert built == ["data", "train", "report"]


def test_realize1_takes_the_remote_options(
    S: StorageSettings, SB: StorageSettings, tmp_path: Any
) -> None:
    """realize1 passes substituters and push_to through."""
    cache = open_remote(str(tmp_path / "cache"))
    r = realize1(instantiate(stages.report, S=S), push_to=cache)
    assert realize1(instantiate(stages.report, S=SB), substituters=[cache]) == r


def test_read_only_push_to_is_refused_before_building(S: StorageSettings) -> None:
    """push_to an http:// remote fails before any build; the store is unchanged."""
    with pytest.raises(RemoteError) as e:
        realize(instantiate(stages.report, S=S), push_to="http://127.0.0.1:9/cache")
    assert str(e.value) == (
        "remote http://127.0.0.1:9/cache is read-only (http:// serves a pushed cache): "
        "push to the folder or bucket it serves instead"
    )
    assert list(allrrefs(S)) == []


def test_malformed_trusted_key_is_refused() -> None:
    """A trusted key that is not name:base64 is an OptionError naming it."""
    with pytest.raises(OptionError) as e:
        make_substituters(["/tmp/cache"], ["ci-1"])
    assert str(e.value) == (
        "trusted key 'ci-1' is not a public key 'name:base64' (as printed by "
        "`pylightnix key generate`)"
    )


def test_no_substituters_configured_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments or environment there is nothing to ask (the no-op path stays as it was)."""
    monkeypatch.delenv(ENV_SUBSTITUTERS, raising=False)
    assert make_substituters(None, None) is None
    assert make_substituters([], ["ci-1:" + "A" * 43 + "="]) is None


def test_substituters_pickle(tmp_path: Any) -> None:
    """The substituters of a realize call pickle with their remotes and keys (for workers)."""
    import pickle

    subs = make_substituters([str(tmp_path / "c"), "s3://b/p"], ["ci-1:" + "A" * 43 + "="])
    assert subs is not None
    copy = pickle.loads(pickle.dumps(subs))
    assert (copy.remotes, copy.trusted_keys) == (subs.remotes, subs.trusted_keys)

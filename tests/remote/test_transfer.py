"""push/pull on every backend: round trips, skips, damaged and forged objects, races, kills."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from typing import Any

import pytest

from pylightnix import (
    IntegrityError,
    StorageSettings,
    allrrefs,
    fsinit,
    instantiate,
    mkSS,
    realize,
    rref2path,
    verify,
)
from pylightnix.errors import OptionError, RefError, RemoteError, TrustError
from pylightnix.hashing import context_hash
from pylightnix.realize.buildlog import rreflog, rreflog_path
from pylightnix.refs import parse_rref, rref2dref
from pylightnix.remote import generate_key, open_remote, pull, push
from pylightnix.remote.layout import (
    FORMAT_FILE,
    archive_path,
    claim_json,
    claim_path,
    index_path,
    parse_claim,
)
from pylightnix.types import RRef
from tests.helpers import listing
from tests.remote import stages
from tests.remote.conftest import Backend

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(S: StorageSettings, stage: Any = stages.report, *args: Any) -> dict[str, RRef]:
    """Realize ``stage`` in ``S``; the chosen RRef of every stage by name."""
    _, _, ctx = realize(instantiate(stage, *args, S=S))
    return {d.rsplit("-", 1)[1]: rs[0] for d, rs in ctx.items()}


def snapshot(S: StorageSettings) -> list[tuple[str, int, bytes]]:
    """The whole store tree but its lock files (taking a lock creates its file)."""
    return [x for x in listing(os.path.dirname(S.storage)) if "/.locks" not in x[0]]


def claim_of(b: Backend, r: RRef) -> Any:
    data = b.writer.read(claim_path(r))
    assert data is not None
    return parse_claim(data, r, "test")


class TestTransfer:
    """The cache contract, run against each backend (local folder, S3, read-only HTTP)."""

    def test_pull_gives_equal_rrefs_and_identical_folders(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """A pushed 3-stage closure pulled into another store has equal RRefs and files."""
        rr = build(S)
        sent = push([rr["report"]], backend.writer, S=S)
        assert [rr["data"], rr["train"], rr["report"]] == list(sent.transferred)
        assert sent.skipped == ()
        assert sent.nbytes > 0
        got = pull([rr["report"]], backend.reader, S=SB)
        assert got.transferred == sent.transferred
        assert got.nbytes == sent.nbytes
        assert sorted(allrrefs(SB)) == sorted(rr.values())
        for r in rr.values():
            assert listing(rref2path(r, S)) == listing(rref2path(r, SB))
        assert os.listdir(SB.tmpdir) == []

    def test_a_realization_without_build_log_round_trips(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """Silent builds store no build.log; pushed and pulled, they still have none and
        their logs read as empty on both sides."""
        rr = build(S)
        for r in rr.values():
            assert not os.path.lexists(rreflog_path(r, S))
        push([rr["report"]], backend.writer, S=S)
        pull([rr["report"]], backend.reader, S=SB)
        for r in rr.values():
            assert not os.path.lexists(rreflog_path(r, SB))
            assert rreflog(r, SB) == rreflog(r, S) == ""
        assert verify(S=SB).ok

    def test_second_push_and_pull_skip_everything(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """What the other side holds is not sent again, and the result says so."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        again = push([rr["report"]], backend.writer, S=S)
        assert (again.transferred, again.configs, again.nbytes) == ((), (), 0)
        assert again.skipped == (rr["data"], rr["train"], rr["report"])
        pull([rr["report"]], backend.reader, S=SB)
        p2 = pull([rr["report"]], backend.reader, S=SB)
        assert (p2.transferred, p2.skipped, p2.nbytes) == ((), (rr["report"],), 0)

    def test_push_sends_only_what_is_missing(self, backend: Backend, S: StorageSettings) -> None:
        """After the first stage was pushed, pushing the last sends the two others only."""
        rr = build(S)
        push([rr["data"]], backend.writer, S=S)
        res = push([rr["report"]], backend.writer, S=S)
        assert (res.transferred, res.skipped) == ((rr["train"], rr["report"]), (rr["data"],))
        assert res.configs == tuple(sorted([rref2dref(rr["report"]), rref2dref(rr["train"])]))

    def test_remote_index_lists_realizations_by_context(
        self, backend: Backend, S: StorageSettings
    ) -> None:
        """The claims of a DRef in a context are one listing of its by-context folder."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        ctx = {rref2dref(rr["data"]): [rr["data"]]}
        d = index_path(rr["train"], context_hash(ctx)).rsplit("/", 1)[0]
        assert backend.reader.listdir(d) == [parse_rref(rr["train"])[0]]

    def test_pull_of_an_unknown_rref_is_a_remote_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """Pulling what the remote does not hold names the RRef and the remote."""
        rr = build(S)
        push([rr["data"]], backend.writer, S=S)
        before = snapshot(SB)
        with pytest.raises(RemoteError) as e:
            pull([rr["report"]], backend.reader, S=SB)
        assert str(e.value) == (
            f"remote {backend.reader.url} holds no realization {rr['report']} (push it there first)"
        )
        assert snapshot(SB) == before

    def test_corrupt_archive_is_an_integrity_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """A flipped byte in an archive is caught before unpacking; the store is unchanged."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        c = claim_of(backend, rr["train"])
        data = bytearray(backend.writer.read(c.archive_path) or b"")
        data[len(data) // 2] ^= 0xFF
        backend.writer.write(c.archive_path, bytes(data))
        before = snapshot(SB)
        with pytest.raises(IntegrityError) as e:
            pull([rr["report"]], backend.reader, S=SB)
        actual = hashlib.sha256(bytes(data)).hexdigest()
        assert str(e.value) == (
            f"remote {backend.reader.url}: the archive {c.archive_path} of {rr['train']} "
            f"has sha256 {actual}, its claim says {c.archive} (corrupt); nothing was pulled"
        )
        assert e.value.ref == rr["train"]  # type: ignore[attr-defined]
        assert snapshot(SB) == before

    def test_truncated_archive_is_an_integrity_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """An archive cut short is refused by its size; the store is unchanged."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        c = claim_of(backend, rr["data"])
        data = backend.writer.read(c.archive_path) or b""
        backend.writer.write(c.archive_path, data[:-10])
        before = snapshot(SB)
        with pytest.raises(IntegrityError) as e:
            pull([rr["report"]], backend.reader, S=SB)
        assert str(e.value) == (
            f"remote {backend.reader.url}: the archive {c.archive_path} of {rr['data']} "
            f"has {c.size - 10} bytes, its claim says {c.size} (truncated or replaced); "
            "nothing was pulled"
        )
        assert snapshot(SB) == before

    def test_missing_archive_behind_a_claim_is_an_integrity_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """A claim whose archive was deleted is refused; the store is unchanged."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        c = claim_of(backend, rr["report"])
        backend.writer.delete(c.archive_path)
        before = snapshot(SB)
        with pytest.raises(IntegrityError) as e:
            pull([rr["report"]], backend.reader, S=SB)
        assert str(e.value) == (
            f"remote {backend.reader.url}: the archive {c.archive_path} of {rr['report']} "
            "is missing behind its claim (an interrupted push? push it again); "
            "nothing was pulled"
        )
        assert snapshot(SB) == before

    def test_forged_archive_with_a_matching_claim_is_an_integrity_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """An archive with other content, and a claim rewritten to its hash, fails the re-hash."""
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        c = claim_of(backend, rr["report"])
        rhash = parse_rref(rr["report"])[0]
        buf = io.BytesIO()
        raw = io.BytesIO(backend.writer.read(c.archive_path) or b"")
        with tarfile.open(fileobj=raw) as src, tarfile.open(fileobj=buf, mode="w:gz") as out:
            for m in src.getmembers():
                f = src.extractfile(m) if m.isfile() else None
                if m.name == f"{rhash}/report.txt":
                    payload = b"report of a forged model\n"
                    m.size = len(payload)
                    f = io.BytesIO(payload)
                out.addfile(m, f)
        forged = buf.getvalue()
        sha = hashlib.sha256(forged).hexdigest()
        backend.writer.write(archive_path(sha, "gzip"), forged)
        fc = type(c)(c.rref, c.context, sha, len(forged), "gzip")
        backend.writer.write(claim_path(c.rref), claim_json(fc))
        before = snapshot(SB)
        with pytest.raises(IntegrityError) as e:
            pull([rr["report"]], backend.reader, S=SB)
        msg = str(e.value)
        prefix = (
            f"remote {backend.reader.url}: realization {rr['report']} does not match its RRef: "
        )
        assert msg.startswith(prefix + "its content hashes to ")
        assert msg.endswith(f", not {rhash} (edited or corrupted); nothing was imported")
        assert snapshot(SB) == before

    def test_unsigned_claim_with_trusted_keys_is_a_trust_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """With trusted keys, an unsigned claim is refused and nothing is pulled."""
        pub = generate_key("alice-1", str(tmp_path / "alice.sec"))
        rr = build(S)
        push([rr["report"]], backend.writer, S=S)
        before = snapshot(SB)
        with pytest.raises(TrustError) as e:
            pull([rr["report"]], backend.reader, S=SB, trusted_keys=[pub])
        assert str(e.value) == (
            f"remote {backend.reader.url}: the claim of {rr['report']} is unsigned, and trusted "
            "keys are required: push it with sign_with=SECRET_KEY (--sign), or pull without "
            "trusted_keys"
        )
        assert snapshot(SB) == before

    def test_signed_claims_pull_with_the_trusted_key_only(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """Claims signed by a trusted key pass; a key of another name is not trusted."""
        pub = generate_key("alice-1", str(tmp_path / "alice.sec"))
        bob = generate_key("bob-1", str(tmp_path / "bob.sec"))
        rr = build(S)
        push([rr["report"]], backend.writer, S=S, sign_with=str(tmp_path / "alice.sec"))
        with pytest.raises(TrustError) as e:
            pull([rr["report"]], backend.reader, S=SB, trusted_keys=[bob])
        assert str(e.value) == (
            f"remote {backend.reader.url}: the claim of {rr['report']} is refused: it is "
            "signed only by keys that are not trusted (alice-1); nothing was pulled"
        )
        got = pull([rr["report"]], backend.reader, S=SB, trusted_keys=[bob, pub])
        assert len(got.transferred) == 3

    def test_wrong_signature_is_a_trust_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """A signature that does not verify with the trusted key of its name is refused."""
        generate_key("alice-1", str(tmp_path / "real.sec"))
        impostor = generate_key("alice-1", str(tmp_path / "other.sec"))
        rr = build(S)
        push([rr["report"]], backend.writer, S=S, sign_with=str(tmp_path / "real.sec"))
        before = snapshot(SB)
        with pytest.raises(TrustError) as e:
            pull([rr["report"]], backend.reader, S=SB, trusted_keys=[impostor])
        assert str(e.value) == (
            f"remote {backend.reader.url}: the claim of {rr['report']} is refused: its "
            "signature by 'alice-1' does not verify (forged or altered); nothing was pulled"
        )
        assert snapshot(SB) == before

    def test_altered_signed_claim_is_a_trust_error(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """Pointing a signed claim at another archive breaks its signature."""
        pub = generate_key("alice-1", str(tmp_path / "alice.sec"))
        rr = build(S)
        push([rr["report"]], backend.writer, S=S, sign_with=str(tmp_path / "alice.sec"))
        c = claim_of(backend, rr["data"])
        other = claim_of(backend, rr["train"])
        moved = type(c)(c.rref, c.context, other.archive, other.size, "gzip", c.signatures)
        backend.writer.write(claim_path(c.rref), claim_json(moved))
        with pytest.raises(TrustError) as e:
            pull([rr["report"]], backend.reader, S=SB, trusted_keys=[pub])
        assert "its signature by 'alice-1' does not verify" in str(e.value)
        assert e.value.ref == rr["data"]  # type: ignore[attr-defined]

    def test_not_a_cache_and_another_format_are_remote_errors(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings
    ) -> None:
        """A remote without the format marker, or with another format, is refused."""
        rr = build(S)
        with pytest.raises(RemoteError) as e:
            pull([rr["data"]], backend.reader, S=SB)
        assert str(e.value) == (
            f"remote {backend.reader.url} is not a pylightnix cache (it has no "
            f"{FORMAT_FILE}): push to it first, or check the URL"
        )
        backend.writer.write(FORMAT_FILE, b'{"format": "pylightnix-remote-v9"}')
        with pytest.raises(RemoteError) as e:
            pull([rr["data"]], backend.reader, S=SB)
        assert str(e.value) == (
            f"remote {backend.reader.url} has format 'pylightnix-remote-v9', this pylightnix "
            "reads 'pylightnix-remote-v1': use a pylightnix of that version, or another remote"
        )

    def test_two_pushers_of_the_same_closure_at_once(
        self, backend: Backend, S: StorageSettings, SB: StorageSettings, tmp_path: Any
    ) -> None:
        """Two processes pushing one closure (built in two stores) at once leave a cache
        from which every realization pulls and verifies."""
        ra, rb = build(S), build(SB)
        assert ra == rb
        procs = [
            _spawn(
                {
                    "root": os.path.dirname(st.storage),
                    "url": backend.writer.url,
                    "options": backend.writer.storage_options,
                    "refs": [ra["report"]],
                    "ready": str(tmp_path / f"ready-{i}"),
                    "go": str(tmp_path / "go"),
                }
            )
            for i, st in enumerate([S, SB])
        ]
        _wait_files([str(tmp_path / "ready-0"), str(tmp_path / "ready-1")], procs)
        with open(tmp_path / "go", "w"):
            pass
        outs = [json.loads(_finish(p)) for p in procs]
        for o in outs:
            assert sorted(o["transferred"] + o["skipped"]) == sorted(ra.values())
        SC = fsinit(mkSS(str(tmp_path / "plx-c")))
        got = pull([ra["report"]], backend.reader, S=SC)
        assert sorted(got.transferred) == sorted(ra.values())
        if backend.writer.is_local:
            leftovers = [
                n for _, _, files in os.walk(backend.writer.url) for n in files if ".tmp-" in n
            ]
            assert leftovers == []

    @pytest.mark.parametrize("stop_at", [("archives", 2), ("claims", 2)])
    def test_push_killed_midway_leaves_only_complete_objects(
        self,
        backend: Backend,
        S: StorageSettings,
        SB: StorageSettings,
        tmp_path: Any,
        stop_at: tuple[str, int],
    ) -> None:
        """After a push is SIGKILLed, whatever claims the remote shows pull completely,
        and the rest is simply absent; pushing again completes the cache."""
        rr = build(S, stages.chain, 5)
        order = [rr[n] for n in ["data", "step1", "step2", "step3", "step4"]]
        p = _spawn(
            {
                "root": os.path.dirname(S.storage),
                "url": backend.writer.url,
                "options": backend.writer.storage_options,
                "refs": [rr["step4"]],
                "stop_at": list(stop_at),
                "stopped": str(tmp_path / "stopped"),
            }
        )
        _wait_files([str(tmp_path / "stopped")], [p])
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL
        claimed = [r for r in order if backend.reader.read(claim_path(r)) is not None]
        assert claimed == ([] if stop_at[0] == "archives" else order[:2])
        for r in order:
            if r in claimed:
                assert r in pull([r], backend.reader, S=SB).targets
            else:
                with pytest.raises(RemoteError):
                    pull([r], backend.reader, S=SB)
        assert sorted(allrrefs(SB)) == sorted(claimed)
        res = push([rr["step4"]], backend.writer, S=S)
        assert res.transferred == tuple(order[len(claimed) :])
        assert pull([rr["step4"]], backend.reader, S=SB).transferred == tuple(order[len(claimed) :])


def test_push_to_read_only_http_is_refused(S: StorageSettings, tmp_path: Any) -> None:
    """An http(s):// remote is read-only: push says where to push instead."""
    rr = build(S)
    with pytest.raises(RemoteError) as e:
        push([rr["data"]], "http://127.0.0.1:9/cache", S=S)
    assert str(e.value) == (
        "remote http://127.0.0.1:9/cache is read-only (http:// serves a pushed cache): "
        "push to the folder or bucket it serves instead"
    )


def test_pull_refuses_malformed_refs(S: StorageSettings, tmp_path: Any) -> None:
    """A string that is not an RRef is a RefError before the remote is contacted."""
    with pytest.raises(RefError) as e:
        pull(["dref:nope"], str(tmp_path / "cache"), S=S)  # type: ignore[list-item]
    assert str(e.value) == "'dref:nope' is not an RRef (expected rref:<hash>-<hash>-<name>)"


def test_unreachable_remote_is_a_remote_error(S: StorageSettings, SB: StorageSettings) -> None:
    """A remote nobody listens on fails with a RemoteError naming its URL."""
    rr = build(S)
    with pytest.raises(RemoteError) as e:
        pull([rr["data"]], "http://127.0.0.1:9/cache", S=SB)
    assert str(e.value).startswith("remote http://127.0.0.1:9/cache: reading ")


def _spawn(args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.remote.pusher", json.dumps(args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_files(paths: list[str], procs: list[subprocess.Popen[str]]) -> None:
    """Wait (bounded) until every file exists; fail early if a process died."""
    deadline = time.monotonic() + 60
    while not all(os.path.exists(p) for p in paths):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"process exited {p.returncode}: {p.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.005)


def _finish(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out


def test_auto_compression_follows_a_sample_of_the_files(S: StorageSettings, tmp_path: Any) -> None:
    """'auto' gzips text-like realizations and stores incompressible ones as plain tar."""
    rr = build(S, stages.noise, 1 << 20)
    cache = open_remote(str(tmp_path / "cache"))
    push([rr["noise"]], cache, S=S)
    assert [claim_of_remote(cache, r).compression for r in (rr["data"], rr["noise"])] == [
        "gzip",
        "none",
    ]
    forced = open_remote(str(tmp_path / "cache2"))
    push([rr["noise"]], forced, S=S, compression="gzip")
    assert claim_of_remote(forced, rr["noise"]).compression == "gzip"


def test_unknown_compression_is_an_option_error(S: StorageSettings, tmp_path: Any) -> None:
    """compression must be auto, gzip or none."""
    rr = build(S)
    with pytest.raises(OptionError) as e:
        push([rr["data"]], str(tmp_path / "c"), S=S, compression="zstd")
    assert str(e.value) == "compression='zstd': expected 'auto' or one of ['gzip', 'none']"


def claim_of_remote(R: Any, r: RRef) -> Any:
    data = R.read(claim_path(r))
    assert data is not None
    return parse_claim(data, r, "test")

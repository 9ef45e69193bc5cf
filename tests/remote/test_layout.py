"""Claims: their JSON form, and malformed claims refused with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pylightnix.errors import IntegrityError
from pylightnix.remote.layout import (
    Claim,
    Signature,
    claim_json,
    claim_path,
    index_path,
    parse_claim,
)
from pylightnix.types import DRef, RRef

D0 = DRef("dref:" + "c" * 32 + "-dep")
R0 = RRef("rref:" + "d" * 32 + "-" + "c" * 32 + "-dep")
R = RRef("rref:" + "a" * 32 + "-" + "b" * 32 + "-x")
GOOD = Claim(R, {D0: [R0]}, "e" * 64, 123, "gzip", (Signature("k", "c2ln"),))


def test_claim_round_trips_through_json() -> None:
    """claim_json and parse_claim are inverse."""
    assert parse_claim(claim_json(GOOD), R, "src") == GOOD


def test_paths() -> None:
    """Claims live by RRef under their derivation; markers by context hash."""
    assert claim_path(R) == f"drv/{'b' * 32}-x/{'a' * 32}.json"
    assert index_path(R, "f" * 64) == f"drv/{'b' * 32}-x/by-context/{'f' * 64}/{'a' * 32}"


def _with(**kw: Any) -> bytes:
    d = json.loads(claim_json(GOOD))
    d.update(kw)
    return json.dumps(d).encode()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            b"{",
            "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b"[]", "not a JSON object"),
        (_with(format="v0"), "format 'v0', expected 'pylightnix-remote-v1'"),
        (_with(rref=str(R0)), f"it names {str(R0)!r} / {'dref:' + 'b' * 32 + '-x'!r}"),
        (_with(context=[]), "'context' is not an object"),
        (_with(context={str(D0): [str(R)]}), f"context entry {str(D0)!r}: {str(R)!r}"),
        (_with(archive="E" * 64), f"'archive' {'E' * 64!r} is not a sha256 hex digest"),
        (_with(size=-1), "'size' -1"),
        (_with(size=True), "'size' True"),
        (_with(compression="zstd"), "'compression' 'zstd', expected one of ['gzip', 'none']"),
        (_with(signatures=[{"key": 1}]), "'signatures' is not a list of {key, sig}"),
    ],
)
def test_malformed_claims_are_integrity_errors(data: bytes, why: str) -> None:
    """Each kind of malformed claim is refused with its reason and the RRef."""
    with pytest.raises(IntegrityError) as e:
        parse_claim(data, R, "remote X")
    assert str(e.value) == (
        f"remote X: the claim of {R} is malformed ({why}): the remote is damaged or was "
        "written by something else; nothing was pulled"
    )
    assert e.value.ref == R  # type: ignore[attr-defined]

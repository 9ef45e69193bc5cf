"""The remote layout ``pylightnix-remote-v1`` (docs/remote-format.md): paths and claims.

Pure functions: where each object lives, and the claim record (what a
pusher says about one realization) with its JSON form and signed payload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pylightnix.config import canonical_json
from pylightnix.errors import IntegrityError
from pylightnix.refs import dref_dirname, maybe_parse_dref, maybe_parse_rref, parse_rref, rref2dref
from pylightnix.types import Context, DRef, RRef

FORMAT = "pylightnix-remote-v1"
FORMAT_FILE = "pylightnix-remote.json"
"""The marker at the remote's top: ``{"format": FORMAT}``; another format is refused."""
CLAIM_DOMAIN = b"pylightnix-claim-v1\0"
COMPRESSIONS = {"gzip": ".tar.gz", "none": ".tar"}
_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")


def drv_dir(dref: DRef) -> str:
    """The folder of a derivation: its config, claims and context index.

    >>> drv_dir(DRef("dref:" + "a" * 32 + "-x"))
    'drv/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x'
    """
    return f"drv/{dref_dirname(dref)}"


def config_path(dref: DRef) -> str:
    return f"{drv_dir(dref)}/config.json"


def claim_name(rref: RRef) -> str:
    return f"{parse_rref(rref)[0]}.json"


def claim_path(rref: RRef) -> str:
    return f"{drv_dir(rref2dref(rref))}/{claim_name(rref)}"


def index_dir(dref: DRef, chash: str) -> str:
    """The folder listing the realizations of ``dref`` pushed in the context ``chash``."""
    return f"{drv_dir(dref)}/by-context/{chash}"


def index_path(rref: RRef, chash: str) -> str:
    return f"{index_dir(rref2dref(rref), chash)}/{parse_rref(rref)[0]}"


def archive_path(sha256: str, compression: str) -> str:
    """Archives are named by the sha256 of their bytes (content-addressed).

    >>> archive_path("0" * 64, "gzip")
    'archives/0000000000000000000000000000000000000000000000000000000000000000.tar.gz'
    """
    return f"archives/{sha256}{COMPRESSIONS[compression]}"


@dataclass(frozen=True)
class Signature:
    """An ed25519 signature of a claim's payload by the key named ``key``."""

    key: str
    sig: str  # base64


@dataclass(frozen=True)
class Claim:
    """What a remote says about one realization: its identity and its archive."""

    rref: RRef
    context: Context
    archive: str  # sha256 hex of the archive bytes
    size: int
    compression: str
    signatures: tuple[Signature, ...] = ()

    @property
    def dref(self) -> DRef:
        return rref2dref(self.rref)

    @property
    def archive_path(self) -> str:
        return archive_path(self.archive, self.compression)

    def deps(self) -> list[RRef]:
        return sorted({r for rs in self.context.values() for r in rs})


def claim_payload(rref: RRef, context: Context, archive: str) -> bytes:
    """The bytes a signature covers: RRef, DRef, context and archive hash.

    >>> claim_payload(RRef("rref:" + "a" * 32 + "-" + "b" * 32 + "-x"), {}, "0" * 64)[:20]
    b'pylightnix-claim-v1\\x00'
    """
    body = {
        "rref": rref,
        "dref": rref2dref(rref),
        "context": {k: sorted(v) for k, v in context.items()},
        "archive": archive,
    }
    return CLAIM_DOMAIN + canonical_json(body)


def claim_json(c: Claim) -> bytes:
    """The claim as stored: indented JSON with sorted keys."""
    d = {
        "format": FORMAT,
        "rref": c.rref,
        "dref": c.dref,
        "context": {k: sorted(v) for k, v in c.context.items()},
        "archive": c.archive,
        "size": c.size,
        "compression": c.compression,
        "signatures": [{"key": s.key, "sig": s.sig} for s in c.signatures],
    }
    return json.dumps(d, indent=1, sort_keys=True).encode()


def parse_claim(data: bytes, rref: RRef, source: str) -> Claim:
    """The claim of ``rref`` read from ``data``; anything malformed is an IntegrityError.

    Args:
        data: the stored claim bytes.
        rref: the realization whose claim path they were read from.
        source: names the remote and the object in error messages.
    """

    def bad(why: str) -> IntegrityError:
        return IntegrityError(
            f"{source}: the claim of {rref} is malformed ({why}): the remote is damaged "
            "or was written by something else; nothing was pulled",
            ref=rref,
        )

    try:
        d: Any = json.loads(data)
    except ValueError as e:
        raise bad(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise bad("not a JSON object")
    if d.get("format") != FORMAT:
        raise bad(f"format {d.get('format')!r}, expected {FORMAT!r}")
    if d.get("rref") != rref or d.get("dref") != rref2dref(rref):
        raise bad(f"it names {d.get('rref')!r} / {d.get('dref')!r}")
    ctx = d.get("context")
    if not isinstance(ctx, dict):
        raise bad("'context' is not an object")
    context: Context = {}
    for k, v in ctx.items():
        if maybe_parse_dref(k) is None or not isinstance(v, list) or not v:
            raise bad(f"context entry {k!r}")
        for r in v:
            if maybe_parse_rref(r) is None or rref2dref(RRef(r)) != k:
                raise bad(f"context entry {k!r}: {r!r}")
        context[DRef(k)] = sorted(RRef(r) for r in v)
    sha, size, comp = d.get("archive"), d.get("size"), d.get("compression")
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        raise bad(f"'archive' {sha!r} is not a sha256 hex digest")
    if type(size) is not int or size < 0:
        raise bad(f"'size' {size!r}")
    if comp not in COMPRESSIONS:
        raise bad(f"'compression' {comp!r}, expected one of {sorted(COMPRESSIONS)}")
    sigs = d.get("signatures", [])
    if not isinstance(sigs, list) or not all(
        isinstance(s, dict) and isinstance(s.get("key"), str) and isinstance(s.get("sig"), str)
        for s in sigs
    ):
        raise bad("'signatures' is not a list of {key, sig}")
    return Claim(rref, context, sha, size, comp, tuple(Signature(s["key"], s["sig"]) for s in sigs))

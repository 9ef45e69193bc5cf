"""Signing keys: ed25519 through ``cryptography`` (the ``remote`` extra).

A secret key file holds one line ``name:base64(32-byte seed)`` and has mode
0600; a public key is written ``name:base64(32-byte key)``. A claim's
signature covers :func:`~pylightnix.remote.layout.claim_payload` (RRef, DRef,
context and archive hash), so a writable cache cannot swap an archive or
re-label a realization without the secret key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from pylightnix.errors import ExtraMissingError, OptionError, TrustError
from pylightnix.remote.layout import Claim, Signature, claim_payload

_KEY_NAME_RE = re.compile(r"[A-Za-z0-9._-]+\Z")
TrustedKeys = Mapping[str, tuple[bytes, ...]]
"""Trusted public keys by name (a name may carry several keys)."""


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise ExtraMissingError(
            "signing and checking claims needs cryptography: pip install 'pylightnix-ng[remote]'"
            " (in a checkout: pip install -e '.[remote]')",
            extra="remote",
        ) from e
    return ed25519


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: str, size: int) -> bytes | None:
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return b if len(b) == size else None


def _raw_public(sk: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def generate_key(name: str, secret_path: str | os.PathLike[str]) -> str:
    """Write a new ed25519 secret key to ``secret_path`` (mode 0600); return its public key.

    Args:
        name: the key's name (letters, digits, ``._-``), e.g. ``cache.example.org-1``.
        secret_path: the secret key file to create; an existing file is never replaced.

    Returns:
        the public key ``name:base64``, to give to ``trusted_keys``.

    Raises:
        OptionError: a bad name, or ``secret_path`` exists or its folder does not.
    """
    if not isinstance(name, str) or not _KEY_NAME_RE.match(name):
        raise OptionError(
            f"key name {name!r}: use letters, digits, '.', '_' and '-' only (e.g. 'laptop-1')",
            option="name",
            value=name,
        )
    ed = _ed25519()
    sk = ed.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    seed = sk.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    path = os.fspath(secret_path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OptionError(
            f"secret key file {path!r} already exists: it is never replaced "
            "(choose another file, or delete it yourself)",
            option="secret_path",
            value=path,
        ) from None
    except FileNotFoundError:
        raise OptionError(
            f"cannot create the secret key file {path!r}: its folder does not exist",
            option="secret_path",
            value=path,
        ) from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(f"{name}:{_b64(seed)}\n")
    return f"{name}:{_b64(_raw_public(sk))}"


def load_secret_key(secret_path: str | os.PathLike[str]) -> tuple[str, Any]:
    """The name and private key of a secret key file written by :func:`generate_key`.

    Raises:
        OptionError: the file is missing, readable by others, or malformed.
    """
    path = os.fspath(secret_path)

    def bad(why: str) -> OptionError:
        return OptionError(f"secret key file {path!r}: {why}", option="sign_with", value=path)

    try:
        st = os.stat(path)
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise bad(f"cannot be read ({e})") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise bad(
            f"is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {path}`"
        )
    name, _, b = text.partition(":")
    seed = _unb64(b, 32)
    if not _KEY_NAME_RE.match(name) or seed is None:
        raise bad("is not a pylightnix secret key (expected 'name:base64' of a 32-byte seed)")
    return name, _ed25519().Ed25519PrivateKey.from_private_bytes(seed)


def public_key(secret_path: str | os.PathLike[str]) -> str:
    """The public key ``name:base64`` of a secret key file."""
    name, sk = load_secret_key(secret_path)
    return f"{name}:{_b64(_raw_public(sk))}"


def sign_claim(claim: Claim, key: tuple[str, Any]) -> Signature:
    """Sign ``claim`` with the ``(name, private key)`` from :func:`load_secret_key`."""
    name, sk = key
    return Signature(name, _b64(sk.sign(claim_payload(claim.rref, claim.context, claim.archive))))


def parse_trusted_keys(keys: Iterable[str]) -> TrustedKeys:
    """Public keys ``name:base64`` by name.

    Raises:
        OptionError: a key is not ``name:base64`` of 32 bytes.
    """
    if isinstance(keys, str):
        keys = [keys]
    out: dict[str, tuple[bytes, ...]] = {}
    for k in keys:
        name, _, b = str(k).strip().partition(":")
        raw = _unb64(b, 32)
        if not _KEY_NAME_RE.match(name) or raw is None:
            raise OptionError(
                f"trusted key {k!r} is not a public key 'name:base64' "
                "(as printed by `pylightnix key generate`)",
                option="trusted_keys",
                value=k,
            )
        out[name] = (*out.get(name, ()), raw)
    return out


def check_trusted(claim: Claim, trusted: TrustedKeys, source: str) -> None:
    """Accept ``claim`` only if a trusted key signed it.

    Raises:
        TrustError: the claim is unsigned, signed only by untrusted keys, or a
            signature by a trusted key's name does not verify.
    """
    if not claim.signatures:
        raise TrustError(
            f"{source}: the claim of {claim.rref} is unsigned, and trusted keys are "
            "required: push it with sign_with=SECRET_KEY (--sign), or pull without trusted_keys",
            ref=claim.rref,
            remote=source,
        )
    ed = _ed25519()
    from cryptography.exceptions import InvalidSignature

    payload = claim_payload(claim.rref, claim.context, claim.archive)
    wrong: list[str] = []
    for s in claim.signatures:
        for raw in trusted.get(s.key, ()):
            sig = _unb64(s.sig, 64)
            try:
                if sig is not None:
                    ed.Ed25519PublicKey.from_public_bytes(raw).verify(sig, payload)
                    return
            except InvalidSignature:
                pass
            wrong.append(s.key)
    names = ", ".join(sorted({s.key for s in claim.signatures}))
    if wrong:
        why = f"its signature by {wrong[0]!r} does not verify (forged or altered)"
    else:
        why = f"it is signed only by keys that are not trusted ({names})"
    raise TrustError(
        f"{source}: the claim of {claim.rref} is refused: {why}; nothing was pulled",
        ref=claim.rref,
        remote=source,
    )

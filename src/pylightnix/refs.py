"""Every reference string is parsed and printed here, and nowhere else.

A derivation reference is ``dref:<dhash>-<name>``; a realization reference is
``rref:<rhash>-<dhash>-<name>``. Hashes are :data:`HASH_LEN` lowercase hex
characters; names match ``[A-Za-z0-9_-]+`` and are at most :data:`MAX_NAME_LEN`
characters long.

>>> d = mkdref(HashPart("0" * 32), Name("hello-src"))
>>> d
'dref:00000000000000000000000000000000-hello-src'
>>> parse_dref(d)
('00000000000000000000000000000000', 'hello-src')
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pylightnix.errors import RefError
from pylightnix.types import DRef, HashPart, Name, RRef

HASH_LEN = 32
"""Length of the hash parts of refs, in hex characters (128 bits of sha256)."""

MAX_NAME_LEN = 128
"""Longest object name, in characters (ASCII, so also bytes).

A name ends up in file names: ``<dhash>-<name>`` (33 + n bytes), the build
lock ``<dhash>-<name>.lock`` and temporary names such as
``trash-<pid>-<12 hex>-<dhash>-<name>`` (about 60 + n bytes). Linux allows
255 bytes per file name; 128 leaves room for such decorations.
"""

DREF_PREFIX = "dref:"
RREF_PREFIX = "rref:"

_NAME = rf"[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}"
_HASH = rf"[0-9a-f]{{{HASH_LEN}}}"
_NAME_RE = re.compile(rf"{_NAME}\Z")
_HASH_RE = re.compile(rf"{_HASH}\Z")
_DREF_RE = re.compile(rf"dref:({_HASH})-({_NAME})\Z")
_RREF_RE = re.compile(rf"rref:({_HASH})-({_HASH})-({_NAME})\Z")
_DREF_DIR_RE = re.compile(rf"({_HASH})-({_NAME})\Z")


def is_name(s: Any) -> bool:
    """Tell whether ``s`` is a valid object name.

    >>> is_name("hello-bin"), is_name("hello 2.10"), is_name("")
    (True, False, False)
    """
    return isinstance(s, str) and _NAME_RE.match(s) is not None


def parse_name(s: Any) -> Name:
    """Return ``s`` as a :data:`Name`, or raise :class:`RefError` saying why not."""
    if not is_name(s):
        if isinstance(s, str) and len(s) > MAX_NAME_LEN:
            raise RefError(name_too_long(s), ref=s)
        raise RefError(
            f"invalid name {s!r}: names may use only letters, digits, '-' and '_' "
            "(rename the stage, e.g. 'hello-2_10')",
            ref=s,
        )
    return Name(s)


def name_too_long(s: str) -> str:
    """The message for a name longer than :data:`MAX_NAME_LEN`.

    >>> name_too_long("a" * 130).split(": ")[0][-27:]
    "'... is 130 characters long"
    """
    return (
        f"name {s[:50]!r}{'...' if len(s) > 50 else ''} is {len(s)} characters long: "
        f"names may have at most {MAX_NAME_LEN} (they become file names; shorten the stage name)"
    )


def is_hashpart(s: Any) -> bool:
    """Tell whether ``s`` is a hash part (32 lowercase hex characters)."""
    return isinstance(s, str) and _HASH_RE.match(s) is not None


def is_dref(s: Any) -> bool:
    """Tell whether ``s`` is a well-formed DRef string.

    >>> is_dref("dref:" + "a" * 32 + "-x"), is_dref("rref:" + "a" * 32 + "-x")
    (True, False)
    """
    return isinstance(s, str) and _DREF_RE.match(s) is not None


def is_rref(s: Any) -> bool:
    """Tell whether ``s`` is a well-formed RRef string."""
    return isinstance(s, str) and _RREF_RE.match(s) is not None


@functools.lru_cache(maxsize=1 << 18)
def _parse_dref_str(s: str) -> tuple[HashPart, Name] | None:
    # Refs are immutable strings parsed again and again on the realize hot path.
    # Room for a closure of 100,000 derivations and more (instantiate parses each
    # once, realize again): a smaller cache misses on every one of them (measured
    # 3% of a no-op realize of 100,000), for about 100 bytes a ref (10 MB there).
    m = _DREF_RE.match(s)
    return m.groups() if m else None  # type: ignore[return-value]  # (HashPart, Name)


def maybe_parse_dref(s: Any) -> tuple[HashPart, Name] | None:
    """Return ``(dhash, name)`` of a DRef string, or ``None`` if it is not one."""
    # type() and not isinstance(): a str subclass could hash unlike its value.
    if type(s) is not str:
        return _parse_dref_str(str(s)) if isinstance(s, str) else None
    return _parse_dref_str(s)


def maybe_parse_rref(s: Any) -> tuple[HashPart, HashPart, Name] | None:
    """Return ``(rhash, dhash, name)`` of an RRef string, or ``None``."""
    if not isinstance(s, str):
        return None
    m = _RREF_RE.match(s)
    return (HashPart(m.group(1)), HashPart(m.group(2)), Name(m.group(3))) if m else None


def parse_dref(s: Any) -> tuple[HashPart, Name]:
    """Return ``(dhash, name)`` of a DRef, or raise :class:`RefError`."""
    r = maybe_parse_dref(s)
    if r is None:
        raise RefError(
            f"invalid DRef {s!r}: expected 'dref:<{HASH_LEN} hex>-<name>'",
            ref=s,
        )
    return r


def parse_rref(s: Any) -> tuple[HashPart, HashPart, Name]:
    """Return ``(rhash, dhash, name)`` of an RRef, or raise :class:`RefError`."""
    r = maybe_parse_rref(s)
    if r is None:
        raise RefError(
            f"invalid RRef {s!r}: expected 'rref:<{HASH_LEN} hex>-<{HASH_LEN} hex>-<name>'",
            ref=s,
        )
    return r


def mkdref(dhash: HashPart, name: Name) -> DRef:
    """Print a DRef from its parts (validated)."""
    if not is_hashpart(dhash):
        raise RefError(f"invalid hash part {dhash!r}", ref=dhash)
    return DRef(f"{DREF_PREFIX}{dhash}-{parse_name(name)}")


def mkdref_of_digest(hexdigest: str, name: Any) -> DRef:
    """:func:`mkdref` of the first :data:`HASH_LEN` characters of a ``hexdigest()`` of
    hashlib (lowercase hex by construction: not checked again) and a name (checked).

    >>> mkdref_of_digest("ab" * 32, "x") == mkdref(HashPart("ab" * 16), Name("x"))
    True

    Raises:
        RefError: ``name`` is not a valid object name.
    """
    return f"{DREF_PREFIX}{hexdigest[:HASH_LEN]}-{parse_name(name)}"  # type: ignore[return-value]


def mkrref(rhash: HashPart, dhash: HashPart, name: Name) -> RRef:
    """Print an RRef from its parts (validated).

    >>> mkrref(HashPart("1" * 32), HashPart("2" * 32), Name("x"))[:10]
    'rref:11111'
    """
    if not is_hashpart(rhash):
        raise RefError(f"invalid hash part {rhash!r}", ref=rhash)
    if not is_hashpart(dhash):
        raise RefError(f"invalid hash part {dhash!r}", ref=dhash)
    return RRef(f"{RREF_PREFIX}{rhash}-{dhash}-{parse_name(name)}")


def mkrrefs(rhashes: list[str], dhash: HashPart, name: Name) -> list[RRef]:
    """RRefs of one derivation from candidate hash parts; non-hash strings are skipped.

    The derivation's parts are validated once, not once per RRef (this runs on
    the hot path of every realize).

    >>> mkrrefs(["1" * 32, "tmp-x"], HashPart("2" * 32), Name("x")) == [
    ...     "rref:" + "1" * 32 + "-" + "2" * 32 + "-x"
    ... ]
    True
    """
    if not is_hashpart(dhash):
        raise RefError(f"invalid hash part {dhash!r}", ref=dhash)
    tail = f"-{dhash}-{parse_name(name)}"
    if len(rhashes) == 1:  # the most common case: one regex, no bulk passes
        h = rhashes[0]
        return [RRef(f"{RREF_PREFIX}{h}{tail}")] if _HASH_RE.match(h) is not None else []
    if set(map(len, rhashes)) <= {HASH_LEN} and _all_hex("".join(rhashes)):
        # The usual case (names listed from an index folder): validated in bulk,
        # and the RRefs printed by one join (hash parts hold no newline).
        if not rhashes:
            return []
        sep = f"{tail}\n{RREF_PREFIX}"
        return f"{RREF_PREFIX}{sep.join(rhashes)}{tail}".split("\n")  # type: ignore[return-value]
    m = _HASH_RE.match
    return [RRef(f"{RREF_PREFIX}{h}{tail}") for h in rhashes if m(h) is not None]


def rref2dref(rref: RRef) -> DRef:
    """The DRef an RRef realizes.

    >>> rref2dref(RRef("rref:" + "1" * 32 + "-" + "2" * 32 + "-x"))
    'dref:22222222222222222222222222222222-x'
    """
    _, dhash, name = parse_rref(rref)
    return DRef(f"{DREF_PREFIX}{dhash}-{name}")


def dref_dirname(dref: DRef) -> str:
    """Folder name of a derivation in the store: ``<dhash>-<name>``."""
    dhash, name = parse_dref(dref)
    return f"{dhash}-{name}"


def maybe_parse_dref_dirname(s: str) -> DRef | None:
    """The DRef of a store folder name ``<dhash>-<name>``, or ``None``."""
    m = _DREF_DIR_RE.match(s)
    return DRef(f"{DREF_PREFIX}{s}") if m else None


def folder_rref(rhash: str, dirname: str) -> RRef:
    """The RRef of the realization folder ``rhash`` inside the derivation folder ``dirname``.

    Both must be valid already (:func:`is_hashpart`, :func:`maybe_parse_dref_dirname`):
    whole-store scans print one RRef per realization without parsing again.

    >>> folder_rref("1" * 32, "2" * 32 + "-x") == mkrref("1" * 32, "2" * 32, "x")
    True
    """
    return RRef(f"{RREF_PREFIX}{rhash}-{dirname}")


def dref_name(dref: DRef) -> Name:
    """The name part of a DRef."""
    return parse_dref(dref)[1]


def dref_hash(dref: DRef) -> HashPart:
    """The hash part of a DRef."""
    return parse_dref(dref)[0]


def rref_hash(rref: RRef) -> HashPart:
    """The realization hash part of an RRef."""
    return parse_rref(rref)[0]


def rref_name(rref: RRef) -> Name:
    """The name part of an RRef."""
    return parse_rref(rref)[2]


def rref_hashes(rrefs: list[RRef], dref: DRef) -> list[HashPart] | None:
    """The realization hash of each RRef when all of them realize ``dref``, else ``None``.

    The hot path of matchers over thousands of candidates of one derivation:
    one comparison per RRef instead of a full parse.

    >>> d = DRef("dref:" + "2" * 32 + "-x")
    >>> rref_hashes([RRef("rref:" + "1" * 32 + "-" + "2" * 32 + "-x")], d) == ["1" * 32]
    True
    >>> rref_hashes([RRef("rref:" + "1" * 32 + "-" + "3" * 32 + "-x")], d) is None
    True
    """
    dhash, name = parse_dref(dref)
    tail = f"-{dhash}-{name}"
    if not rrefs:
        return []
    try:
        text = "\n".join(rrefs)
    except TypeError:
        return None
    # In bulk (C-level passes): every RRef has the one length of this derivation's
    # RRefs; dropping the prefix and the tail of each leaves exactly its hash part.
    width = len(RREF_PREFIX) + HASH_LEN + len(tail)
    if len(text) != len(rrefs) * (width + 1) - 1 or not text.startswith(RREF_PREFIX):
        return None
    body = text.replace(f"{tail}\n{RREF_PREFIX}", "\n")
    hashes = body[len(RREF_PREFIX) : -len(tail)].split("\n")
    ok = (
        body.endswith(tail)
        and len(hashes) == len(rrefs)
        and set(map(len, hashes)) == {HASH_LEN}
        and _all_hex("".join(hashes))
    )
    return hashes if ok else None  # type: ignore[return-value]


_DROP_HEX = str.maketrans("", "", "0123456789abcdef")


def _all_hex(s: str) -> bool:
    """Whether ``s`` holds only lowercase hex digits (in bulk: one C-level pass).

    >>> _all_hex("09af"), _all_hex("09aF"), _all_hex("")
    (True, False, True)
    """
    return not s.translate(_DROP_HEX)

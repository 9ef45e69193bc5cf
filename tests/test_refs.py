"""Tests of refs.py: parsing and printing of DRefs, RRefs and names."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix.errors import RefError
from pylightnix.refs import (
    HASH_LEN,
    dref_dirname,
    dref_hash,
    dref_name,
    is_dref,
    is_hashpart,
    is_name,
    is_rref,
    maybe_parse_dref,
    maybe_parse_dref_dirname,
    maybe_parse_rref,
    mkdref,
    mkdref_of_digest,
    mkrref,
    mkrrefs,
    parse_dref,
    parse_name,
    parse_rref,
    rref2dref,
    rref_hash,
    rref_hashes,
    rref_name,
)
from pylightnix.types import DRef, HashPart, Name, RRef
from tests.strategies import hashparts, names

H1 = HashPart("0123456789abcdef0123456789abcdef")
H2 = HashPart("fedcba9876543210fedcba9876543210")


# No hypothesis deadlines: a loaded 2-core CI machine must not fail a correct test.
@settings(deadline=None)
@given(hashparts, names)
def test_dref_print_parse_round_trip(h: HashPart, n: Name) -> None:
    """Printing a DRef from its parts and parsing it gives the parts back."""
    d = mkdref(h, n)
    assert d == f"dref:{h}-{n}"
    assert parse_dref(d) == (h, n)
    assert is_dref(d) and not is_rref(d)
    assert (dref_hash(d), dref_name(d)) == (h, n)
    assert maybe_parse_dref_dirname(dref_dirname(d)) == d


@settings(deadline=None)
@given(hashparts, hashparts, names)
def test_rref_print_parse_round_trip(r: HashPart, h: HashPart, n: Name) -> None:
    """Printing an RRef from its parts and parsing it gives the parts back."""
    rr = mkrref(r, h, n)
    assert rr == f"rref:{r}-{h}-{n}"
    assert parse_rref(rr) == (r, h, n)
    assert is_rref(rr) and not is_dref(rr)
    assert rref2dref(rr) == mkdref(h, n)
    assert (rref_hash(rr), rref_name(rr)) == (r, n)


@settings(deadline=None)
@given(names)
def test_generated_names_are_valid(n: Name) -> None:
    """Every name over [A-Za-z0-9_-] is accepted as is."""
    assert is_name(n)
    assert parse_name(n) == n


@pytest.mark.parametrize(
    "bad", ["", "a b", "a.b", "a/b", "é", "a\n", "x:y", 5, None, ["a"], "名前"]
)
def test_invalid_names_are_refused_with_the_value(bad: object) -> None:
    """A name outside [A-Za-z0-9_-]+ raises RefError naming it and the fix."""
    assert not is_name(bad)
    with pytest.raises(RefError) as ei:
        parse_name(bad)
    assert str(ei.value) == (
        f"invalid name {bad!r}: names may use only letters, digits, '-' and '_' "
        "(rename the stage, e.g. 'hello-2_10')"
    )
    assert ei.value.ref == bad  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad",
    [
        f"dref:{H1}",
        f"dref:{H1}-",
        f"dref:{H1[:-1]}-x",
        f"dref:{H1.upper()}-x",
        f"dref:{H1}-x y",
        f"DREF:{H1}-x",
        f" dref:{H1}-x",
        f"dref:{H1}-x\n",
        f"rref:{H1}-{H2}-x",
        b"dref:0",
        None,
    ],
)
def test_malformed_drefs_are_refused_exactly(bad: object) -> None:
    """A malformed DRef raises RefError with the exact expected-format message."""
    assert maybe_parse_dref(bad) is None
    with pytest.raises(RefError) as ei:
        parse_dref(bad)
    assert str(ei.value) == f"invalid DRef {bad!r}: expected 'dref:<32 hex>-<name>'"


@pytest.mark.parametrize(
    "bad",
    [
        f"rref:{H1}-x",
        f"rref:{H1}-{H2}",
        f"rref:{H1}-{H2[:-1]}-x",
        f"rref:{H1}-{H2}-a.b",
        f"dref:{H1}-x",
        f"rref:{H1}-{H2}-x/",
        7,
    ],
)
def test_malformed_rrefs_are_refused_exactly(bad: object) -> None:
    """A malformed RRef raises RefError with the exact expected-format message."""
    assert maybe_parse_rref(bad) is None
    with pytest.raises(RefError) as ei:
        parse_rref(bad)
    assert str(ei.value) == (f"invalid RRef {bad!r}: expected 'rref:<32 hex>-<32 hex>-<name>'")


def test_mkdref_and_mkrref_refuse_bad_parts() -> None:
    """Building refs from a bad hash part or name fails with a RefError naming it."""
    with pytest.raises(RefError, match=r"^invalid hash part 'xyz'$"):
        mkdref(HashPart("xyz"), Name("a"))
    with pytest.raises(RefError, match=r"^invalid hash part 'ABC'$"):
        mkrref(HashPart("ABC"), H2, Name("a"))
    with pytest.raises(RefError, match=r"^invalid name 'a b'"):
        mkrref(H1, H2, Name("a b"))


def test_mkrrefs_skips_non_hash_names_and_validates_the_derivation_once() -> None:
    """mkrrefs builds RRefs for hash-like names only, and refuses a bad derivation part."""
    assert mkrrefs([H1, ".tmp-1", H2.upper()], H2, Name("n")) == [f"rref:{H1}-{H2}-n"]
    with pytest.raises(RefError):
        mkrrefs([H1], HashPart("nothex"), Name("n"))
    with pytest.raises(RefError):
        mkrrefs([H1], H2, Name("bad name"))


@settings(deadline=None)
@given(hashparts | st.text(alphabet="0123456789abcdefABCDEF-\n", max_size=34), names)
def test_mkrrefs_of_one_name_agrees_with_the_bulk_path(h: str, n: Name) -> None:
    """One folder name gives the RRef that a listing of several names gives for it."""
    one = mkrrefs([h], H2, n)
    assert one == mkrrefs([h, h], H2, n)[:1]
    assert one == ([mkrref(HashPart(h), H2, n)] if is_hashpart(h) else [])


@settings(deadline=None)
@given(st.binary(max_size=16), names | st.text(max_size=3))
def test_mkdref_of_digest_is_mkdref_of_its_hash_part(data: bytes, n: str) -> None:
    """A DRef from a sha256 hex digest is mkdref of its first HASH_LEN characters, and a bad
    name is refused with mkdref's very error."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        expected = mkdref(HashPart(digest[:HASH_LEN]), Name(n))
    except RefError as e:
        with pytest.raises(RefError) as ei:
            mkdref_of_digest(digest, n)
        assert str(ei.value) == str(e)
        return
    assert mkdref_of_digest(digest, n) == expected


def test_store_folder_names_parse_only_when_well_formed() -> None:
    """Only '<32 hex>-<name>' folder names are derivation folders."""
    assert maybe_parse_dref_dirname(f"{H1}-x") == f"dref:{H1}-x"
    for bad in ["tmp", f"{H1}", f"{H1}-", ".locks", f"{H1}-x.y"]:
        assert maybe_parse_dref_dirname(bad) is None


def _hashes_one_by_one(rrefs: list[str], d: str) -> list[str] | None:
    """What rref_hashes must answer, parsed one RRef at a time."""
    out = []
    for r in rrefs:
        try:
            rhash, dhash, name = parse_rref(RRef(r))
        except RefError:
            return None
        if f"dref:{dhash}-{name}" != d:
            return None
        out.append(rhash)
    return out


_near_rrefs = st.one_of(
    st.builds(lambda h: f"rref:{h}-{'2' * 32}-x", hashparts),
    st.builds(lambda h: f"rref:{h}-{'2' * 32}-xy", hashparts),
    st.builds(lambda h: f"rref:{h}-{'3' * 32}-x", hashparts),
    st.builds(lambda h: f"rref:{h[:31]}G-{'2' * 32}-x", hashparts),
    st.builds(lambda h: f"rref:{h}\n-{'2' * 32}-x", hashparts),
    st.builds(lambda h: f"rref:{h[:30]}-{'2' * 32}-x", hashparts),
    st.builds(lambda h: f"rref:{h}-{'2' * 32}-x\nrref:{h}-{'2' * 32}-x", hashparts),
)


@settings(max_examples=300)
@given(st.lists(st.one_of(_near_rrefs, st.builds(lambda h: f"rref:{h}-{'2' * 32}-x", hashparts))))
def test_rref_hashes_in_bulk_agree_with_parsing_each(rrefs: list[str]) -> None:
    """The bulk rref_hashes answers what parsing each RRef answers, on valid and near-valid
    lists alike."""
    d = DRef(f"dref:{'2' * 32}-x")
    assert rref_hashes([RRef(r) for r in rrefs], d) == _hashes_one_by_one(rrefs, d)

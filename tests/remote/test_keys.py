"""ed25519 keys: generation, secret files, signing and checking claims."""

from __future__ import annotations

import os
import stat
import sys
from typing import Any

import pytest

from pylightnix.errors import ExtraMissingError, OptionError, TrustError
from pylightnix.remote import generate_key, public_key
from pylightnix.remote.keys import check_trusted, load_secret_key, parse_trusted_keys, sign_claim
from pylightnix.remote.layout import Claim
from pylightnix.types import RRef

R = RRef("rref:" + "a" * 32 + "-" + "b" * 32 + "-x")


def _claim(archive: str = "0" * 64) -> Claim:
    return Claim(R, {}, archive, 10, "gzip")


def test_generate_key_writes_mode_0600_whatever_the_umask(tmp_path: Any) -> None:
    """The secret file is 0600 even under umask 0, and public_key reads the same key back."""
    old = os.umask(0)
    try:
        pub = generate_key("k-1", str(tmp_path / "k.sec"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "k.sec").st_mode) == 0o600
    assert public_key(str(tmp_path / "k.sec")) == pub
    assert pub.startswith("k-1:") and len(pub) == len("k-1:") + 44


@pytest.mark.parametrize("name", ["", "a b", "x:y", "é"])
def test_generate_key_refuses_bad_names(tmp_path: Any, name: str) -> None:
    """A name with characters outside [A-Za-z0-9._-] is refused, and no file is made."""
    with pytest.raises(OptionError) as e:
        generate_key(name, str(tmp_path / "k.sec"))
    assert str(e.value) == (
        f"key name {name!r}: use letters, digits, '.', '_' and '-' only (e.g. 'laptop-1')"
    )
    assert not os.path.exists(tmp_path / "k.sec")


def test_generate_key_needs_an_existing_folder(tmp_path: Any) -> None:
    """A secret path in a missing folder is an OptionError."""
    p = str(tmp_path / "no" / "k.sec")
    with pytest.raises(OptionError) as e:
        generate_key("k", p)
    assert str(e.value) == f"cannot create the secret key file {p!r}: its folder does not exist"


def test_secret_readable_by_others_is_refused(tmp_path: Any) -> None:
    """A secret key file with group/other bits is not used for signing."""
    p = str(tmp_path / "k.sec")
    generate_key("k", p)
    os.chmod(p, 0o644)
    with pytest.raises(OptionError) as e:
        load_secret_key(p)
    assert str(e.value) == (
        f"secret key file {p!r}: is readable by others (mode 0644): run `chmod 600 {p}`"
    )


def test_malformed_secret_file_is_refused(tmp_path: Any) -> None:
    """A file that is not name:base64-of-32-bytes is not a secret key."""
    p = str(tmp_path / "k.sec")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k:c2hvcnQ=\n")
    os.close(fd)
    with pytest.raises(OptionError) as e:
        load_secret_key(p)
    assert str(e.value) == (
        f"secret key file {p!r}: is not a pylightnix secret key "
        "(expected 'name:base64' of a 32-byte seed)"
    )


def test_signature_verifies_only_for_its_payload(tmp_path: Any) -> None:
    """A signature checks against its own claim and fails for another archive hash."""
    pub = generate_key("k", str(tmp_path / "k.sec"))
    key = load_secret_key(str(tmp_path / "k.sec"))
    c = _claim()
    signed = Claim(R, {}, c.archive, 10, "gzip", (sign_claim(c, key),))
    check_trusted(signed, parse_trusted_keys([pub]), "remote X")
    moved = Claim(R, {}, "1" * 64, 10, "gzip", signed.signatures)
    with pytest.raises(TrustError) as e:
        check_trusted(moved, parse_trusted_keys([pub]), "remote X")
    assert str(e.value) == (
        f"remote X: the claim of {R} is refused: its signature by 'k' does not verify "
        "(forged or altered); nothing was pulled"
    )


def test_any_of_several_signatures_may_be_trusted(tmp_path: Any) -> None:
    """A claim signed by an untrusted and a trusted key is accepted."""
    generate_key("a", str(tmp_path / "a.sec"))
    pub_b = generate_key("b", str(tmp_path / "b.sec"))
    c = _claim()
    sigs = tuple(sign_claim(c, load_secret_key(str(tmp_path / f"{n}.sec"))) for n in "ab")
    check_trusted(Claim(R, {}, c.archive, 10, "gzip", sigs), parse_trusted_keys([pub_b]), "r")


@pytest.mark.parametrize("key", ["nocolon", "k:", "k:!!!", "k:" + "QUFB" * 3, ":" + "A" * 44])
def test_parse_trusted_keys_refuses_malformed_keys(key: str) -> None:
    """Each malformed public key is an OptionError naming it."""
    with pytest.raises(OptionError) as e:
        parse_trusted_keys([key])
    assert str(e.value) == (
        f"trusted key {key!r} is not a public key 'name:base64' (as printed by "
        "`pylightnix key generate`)"
    )


def test_missing_cryptography_says_what_to_install(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cryptography, generating a key says `pip install 'pylightnix-ng[remote]'`."""
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    with pytest.raises(ExtraMissingError) as e:
        generate_key("k", str(tmp_path / "k.sec"))
    assert str(e.value) == (
        "signing and checking claims needs cryptography: pip install 'pylightnix-ng[remote]'"
        " (in a checkout: pip install -e '.[remote]')"
    )

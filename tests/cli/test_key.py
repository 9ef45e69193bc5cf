"""``pylightnix key``."""

from __future__ import annotations

import os
import stat

from tests.cli.conftest import Run


def test_key_generate_writes_a_private_file_and_prints_the_public_key(
    plx: Run, tmp_path: object
) -> None:
    """generate prints name:base64 and leaves a 0600 secret; public prints the same key."""
    sec = os.path.join(str(tmp_path), "k.sec")
    pub = plx("key", "generate", "laptop-1", "--secret", sec, store=False).out.strip()
    name, _, b64 = pub.partition(":")
    assert (name, len(b64)) == ("laptop-1", 44)
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o600
    assert plx("key", "public", "--secret", sec, store=False).out.strip() == pub


def test_key_generate_never_replaces_a_file(plx: Run, tmp_path: object) -> None:
    """An existing secret file is an error, and it is left as it was."""
    sec = os.path.join(str(tmp_path), "k.sec")
    with open(sec, "w") as f:
        f.write("keep me\n")
    r = plx("key", "generate", "laptop-1", "--secret", sec, store=False, code=1)
    assert r.err == (
        f"Error: secret key file {sec!r} already exists: it is never replaced "
        "(choose another file, or delete it yourself)\n"
    )
    with open(sec) as f:
        assert f.read() == "keep me\n"

"""``pylightnix upgrade``."""

from __future__ import annotations

import json

from tests.cli.conftest import Run
from tests.helpers import unpack_store_v1


def test_ls_names_the_upgrade_then_upgrade_converts(plx: Run, root: str) -> None:
    """On a store-v1 root, commands fail naming `pylightnix upgrade`; after it, they work."""
    unpack_store_v1(root)
    r = plx("ls", code=1)
    assert r.err == (
        f"Error: the store at '{root}/store-v1' has the older format 'store-v1'; this "
        "pylightnix reads 'store-v2': upgrade it in place with `pylightnix upgrade` (or "
        "upgrade_store(S)), after stopping the processes that use it\n"
    )
    assert plx("upgrade").out == (
        f"upgraded {root}/store-v2 (moved from {root}/store-v1): 3 derivations, "
        "5 realizations indexed\n"
    )
    names = sorted(line.split()[0] for line in plx("ls").out.splitlines()[1:])
    assert names == ["broken", "source", "train"]
    again = json.loads(plx("upgrade", "--json").out)
    assert again == {
        "storage": f"{root}/store-v2",
        "derivations": 0,
        "realizations": 0,
        "renamed_from": None,
    }

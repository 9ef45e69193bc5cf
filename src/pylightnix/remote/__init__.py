"""Remote caches: push, pull and substitute closures through fsspec (the ``remote`` extra).

``open_remote`` names a cache (a folder, ``s3://``, ``http(s)://`` read-only,
any fsspec URL); ``push`` and ``pull`` move closures; ``generate_key`` makes
an ed25519 key to sign claims with. The layout is in docs/remote-format.md.
"""

from __future__ import annotations

from pylightnix.remote.backend import Remote as Remote
from pylightnix.remote.backend import open_remote as open_remote
from pylightnix.remote.keys import generate_key as generate_key
from pylightnix.remote.keys import public_key as public_key
from pylightnix.remote.transfer import TransferResult as TransferResult
from pylightnix.remote.transfer import pull as pull
from pylightnix.remote.transfer import push as push

__all__ = [
    "Remote",
    "TransferResult",
    "generate_key",
    "open_remote",
    "public_key",
    "pull",
    "push",
]

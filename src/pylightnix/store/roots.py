"""GC roots: result links registered in ``<storage>/.roots``.

A result link is a user's symlink (``result-hello -> .../store-v2/<d>/<r>``,
like Nix's ``result``). Registering it puts an entry in ``.roots`` named by
the hash of the link's absolute path, itself a symlink to that path. The
collector follows each entry to the user's link, and from it to a
realization; an entry whose link was removed or now points elsewhere is
stale and is pruned.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from pylightnix.errors import StoreError
from pylightnix.store.fsops import unique_suffix
from pylightnix.store.layout import ROOTS_DIR
from pylightnix.store.query import rref_under
from pylightnix.store.settings import StorageSettings
from pylightnix.store.temproots import add_temproots
from pylightnix.types import Path, RRef


@dataclass(frozen=True)
class Root:
    """A registered root: the entry in ``.roots``, the user's link and what it keeps alive."""

    entry: Path
    link: Path
    rref: RRef | None  # None: the link is gone or no longer points into this store


def _entry_path(S: StorageSettings, link: str) -> str:
    h = hashlib.sha256(os.fsencode(os.path.abspath(link))).hexdigest()[:32]
    return os.path.join(S.storage, ROOTS_DIR, h)


def register_root(S: StorageSettings, link: str) -> Path:
    """Register the symlink ``link`` as a GC root (idempotent); return the entry path.

    The realization the link points at is first made a temporary root of
    this process (checked to still exist under the GC lock), so no
    collection can delete it while the entry is being made: there is no
    window in which the result is unprotected.

    Raises:
        StoreError: the link points at a realization that is no longer stored.
    """
    entry = _entry_path(S, link)
    rref = rref_under(os.path.realpath(link), os.path.realpath(S.storage))
    if rref is not None and add_temproots(S, [rref], check=True):
        raise StoreError(
            f"cannot keep {rref} alive through {link!r}: it is no longer in the store "
            "(a garbage collection removed it before it was linked); realize it again "
            "and link the result: realize keeps its results alive until then",
            path=link,
        )
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    tmp = f"{entry}.tmp-{unique_suffix()}"
    os.symlink(os.path.abspath(link), tmp)
    os.replace(tmp, entry)
    return Path(entry)


def unregister_root(S: StorageSettings, link: str) -> None:
    """Remove the root entry of ``link`` (a missing entry is fine)."""
    try:
        os.unlink(_entry_path(S, link))
    except FileNotFoundError:
        pass


def list_roots(S: StorageSettings) -> list[Root]:
    """Every registered root, resolved to the realization its link points at now."""
    d = os.path.join(S.storage, ROOTS_DIR)
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return []
    # Resolve the store itself once: it may sit behind a symlink, and a user's
    # link resolves to the real path.
    real_storage = os.path.realpath(S.storage)
    out: list[Root] = []
    for n in names:
        entry = os.path.join(d, n)
        if ".tmp-" in n or not os.path.islink(entry):
            continue
        link = os.readlink(entry)
        rref: RRef | None = None
        if os.path.islink(link):
            rref = rref_under(os.path.realpath(link), real_storage)
        out.append(Root(Path(entry), Path(link), rref))
    return out

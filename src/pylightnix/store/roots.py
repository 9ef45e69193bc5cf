"""GC roots: result links registered in ``<storage>/.roots``.

A result link is a user's symlink (``result-hello -> .../store-v1/<d>/<r>``,
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
from pylightnix.store.layout import ROOTS_DIR, rref2path_
from pylightnix.store.locks import gc_shared
from pylightnix.store.query import rref_under
from pylightnix.store.settings import StorageSettings
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

    The entry is made under the store's GC lock (shared), so no collection
    runs meanwhile; if the realization the link points at was collected just
    before, the entry is withdrawn and an error says so.

    Raises:
        StoreError: the link points at a realization that is no longer stored.
    """
    entry = _entry_path(S, link)
    with gc_shared(S):
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        tmp = f"{entry}.tmp-{unique_suffix()}"
        os.symlink(os.path.abspath(link), tmp)
        os.replace(tmp, entry)
        target = os.path.realpath(link)
        rref = rref_under(target, os.path.realpath(S.storage))
        if rref is not None and not os.path.isdir(rref2path_(rref, S)):
            os.unlink(entry)
            raise StoreError(
                f"cannot keep {rref} alive through {link!r}: it is no longer in the store "
                "(a garbage collection removed it after it was realized); realize it again "
                "and make the link while holding the store (store.locks.gc_shared)",
                path=link,
            )
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

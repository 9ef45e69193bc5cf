"""Where a store lives: :class:`StorageSettings` and their resolution.

Resolution order, strongest first: an explicit ``S`` argument; the
:func:`current_storage` context (or :func:`store_initialize` with custom
folders, as in the seed); the environment (``PYLIGHTNIX_ROOT``, or
``PYLIGHTNIX_STORE`` / ``PYLIGHTNIX_TMP``); the default ``~/_pylightnix``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from pylightnix.types import Path

STORE_VERSION = "store-v2"
"""Layout version; also the name of the storage folder under the root."""

FORMAT_FILE = "FORMAT"
FORMAT_TEXT = f"pylightnix {STORE_VERSION}\n"


@dataclass(frozen=True)
class StorageSettings:
    """Folders of one store. ``tmpdir`` must be on the same filesystem as ``storage``.

    Attributes:
        root: the root folder (``~/_pylightnix`` by default).
        storage: the versioned storage folder (``root/store-v2``).
        tmpdir: temporary space for builds (``root/tmp``).
        durable: fsync files and folders before they become visible (slower).
    """

    root: Path
    storage: Path
    tmpdir: Path
    durable: bool = False


def mkSS(
    root: str,
    stordir: str | None = None,
    tmpdir: str | None = None,
    *,
    durable: bool = False,
) -> StorageSettings:
    """Storage settings for a root folder (paths made absolute).

    >>> mkSS("/data/plx").storage
    '/data/plx/store-v2'
    """
    r = os.path.abspath(os.path.expanduser(root))
    s = os.path.abspath(stordir) if stordir else os.path.join(r, STORE_VERSION)
    t = os.path.abspath(tmpdir) if tmpdir else os.path.join(r, "tmp")
    return StorageSettings(Path(r), Path(s), Path(t), durable)


def _from_env() -> StorageSettings:
    root = os.environ.get("PYLIGHTNIX_ROOT") or os.path.join(os.path.expanduser("~"), "_pylightnix")
    return mkSS(
        root,
        os.environ.get("PYLIGHTNIX_STORE") or None,
        os.environ.get("PYLIGHTNIX_TMP") or None,
    )


_CURRENT: ContextVar[StorageSettings | None] = ContextVar("pylightnix_storage", default=None)
_GLOBAL: list[StorageSettings | None] = [None]


def set_default_storage(S: StorageSettings | None) -> None:
    """Make ``S`` the process-wide default store (``None``: back to the environment)."""
    _GLOBAL[0] = S


def fsS(S: StorageSettings | None = None) -> StorageSettings:
    """Resolve storage settings: explicit, then context, then process default, then env."""
    if S is not None:
        return S
    cur = _CURRENT.get()
    if cur is not None:
        return cur
    g = _GLOBAL[0]
    if g is not None:
        return g
    return _from_env()


@contextlib.contextmanager
def current_storage(S: StorageSettings) -> Iterator[StorageSettings]:
    """Within the block, calls without an explicit ``S`` use ``S``."""
    tok = _CURRENT.set(S)
    try:
        yield S
    finally:
        _CURRENT.reset(tok)


def fsroot(S: StorageSettings | None = None) -> Path:
    """The root folder of the store."""
    return fsS(S).root


def fsstorage(S: StorageSettings | None = None) -> Path:
    """The storage folder (``<root>/store-v2``)."""
    return fsS(S).storage


def fstmpdir(S: StorageSettings | None = None) -> Path:
    """The temporary folder of the store (same filesystem as the storage)."""
    return fsS(S).tmpdir

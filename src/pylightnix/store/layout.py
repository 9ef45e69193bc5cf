"""The on-disk layout of a ``store-v2`` store (documented in ``docs/store-format.md``).

::

    <storage>/FORMAT                                   "pylightnix store-v2"
    <storage>/<dhash>-<name>/config.json               a derivation
    <storage>/<dhash>-<name>/<rhash>/...               a realization (read-only)
    <storage>/<dhash>-<name>/<rhash>/__pylightnix__/   its reserved files:
        context.json   the direct context {dref: [rref...]} (hashed into rhash)
        meta.json      build times and host (not hashed)
        build.log      what the realizer printed (not hashed)
        failure.json   only in a failed realization (realize/failures.py)
    <storage>/<dhash>-<name>/index.tsv                 its index: realizations per context,
                                                       build times, scores, chosen records
    <storage>/.locks/  <storage>/.roots/                  locks, GC roots
    <storage>/.temproots/<pid>-<random>                temporary roots of a live process
"""

from __future__ import annotations

import os

from pylightnix.errors import StoreError, StoreVersionError
from pylightnix.refs import dref_dirname, is_rref, parse_rref
from pylightnix.store.settings import (
    FORMAT_FILE,
    FORMAT_TEXT,
    STORE_VERSION,
    StorageSettings,
    fsS,
)
from pylightnix.types import DRef, Path, RRef

RESERVED = "__pylightnix__"
"""The one reserved top-level name inside a realization."""
CONFIG_FILE = "config.json"
CONTEXT_FILE = "context.json"
META_FILE = "meta.json"
LOG_FILE = "build.log"
FAILURE_FILE = "failure.json"
INDEX_FILE = "index.tsv"
"""Per-derivation index (``store/index.py``): a cache of the realization folders."""
RESERVED_FILES = (CONTEXT_FILE, META_FILE, LOG_FILE, FAILURE_FILE)
"""Everything a reserved folder may hold: regular files of these names, nothing else."""
LOCKS_DIR = ".locks"
ROOTS_DIR = ".roots"
TEMPROOTS_DIR = ".temproots"
CHASH_LEN = 32


def dref2path(dref: DRef, S: StorageSettings) -> Path:
    """Folder of a derivation (whether or not it exists)."""
    return Path(os.path.join(S.storage, dref_dirname(dref)))


def rref2path_(rref: RRef, S: StorageSettings) -> Path:
    """Folder of a realization (whether or not it exists).

    >>> from pylightnix.store.settings import mkSS
    >>> rref2path_("rref:" + "a" * 32 + "-" + "b" * 32 + "-x", mkSS("/r")) == (
    ...     "/r/store-v2/" + "b" * 32 + "-x/" + "a" * 32
    ... )
    True
    """
    if not is_rref(rref):
        parse_rref(rref)  # raises the RefError that names it
    return rref_folder(S.storage, rref)


def rref_folder(storage: str, rref: str) -> Path:
    """The folder of a realization given a well-formed RRef (not checked again): in
    ``rref:<rhash 32>-<dhash 32>-<name>`` the folder is ``<dhash>-<name>/<rhash>``."""
    return Path(f"{storage}{os.sep}{rref[38:]}{os.sep}{rref[5:37]}")


def is_whole(folder: str) -> bool:
    """Whether the realization folder ``folder`` is in place with its reserved folder:
    an insertion renames a realization in complete, so a folder without one was
    damaged by hand (a stat; the check of a candidate before a matcher sees it)."""
    return os.path.isdir(f"{folder}{os.sep}{RESERVED}")


_CHECKED: set[str] = set()


def check_store(S: StorageSettings) -> None:
    """Raise unless ``S`` points at an initialized store of this version (cached per process)."""
    if S.storage in _CHECKED:
        return
    fmt = os.path.join(S.storage, FORMAT_FILE)
    try:
        with open(fmt, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        old = old_store(S)
        if old is not None:
            raise _upgrade_error(S, old) from None
        if not os.path.isdir(S.storage):
            raise StoreError(
                f"no pylightnix store at {S.storage!r}: initialize it with "
                "store_initialize() / fsinit(S), or `pylightnix init`",
                path=S.storage,
            ) from None
        raise StoreError(
            f"{S.storage!r} exists but is not a pylightnix store (no {FORMAT_FILE} file): "
            "point PYLIGHTNIX_ROOT elsewhere or initialize an empty folder",
            path=S.storage,
        ) from None
    if text == OLD_FORMAT_TEXT:
        raise _upgrade_error(S, S.storage)
    if text != FORMAT_TEXT:
        raise StoreVersionError(
            f"store at {S.storage!r} has format {text.strip()!r}, but this pylightnix "
            f"reads only {FORMAT_TEXT.strip()!r}: use the matching pylightnix version "
            "or a new store root",
            path=S.storage,
            expected=FORMAT_TEXT.strip(),
            actual=text.strip(),
        )
    _CHECKED.add(S.storage)


OLD_VERSION = "store-v1"
OLD_FORMAT_TEXT = f"pylightnix {OLD_VERSION}\n"


def format_text(storage: str) -> str | None:
    """The text of a storage folder's ``FORMAT`` file (``None`` when it cannot be read)."""
    try:
        with open(os.path.join(storage, FORMAT_FILE), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def old_store(S: StorageSettings) -> str | None:
    """The ``store-v1`` storage folder of ``S`` (its own, else ``<root>/store-v1``), or
    ``None``: a real folder (not the link an upgrade leaves) with that ``FORMAT``."""
    for p in (S.storage, os.path.join(S.root, OLD_VERSION)):
        if not os.path.islink(p) and format_text(p) == OLD_FORMAT_TEXT:
            return p
    return None


def _upgrade_error(S: StorageSettings, old: str) -> StoreVersionError:
    return StoreVersionError(
        f"the store at {old!r} has the older format {OLD_VERSION!r}; this pylightnix reads "
        f"{STORE_VERSION!r}: upgrade it in place with `pylightnix upgrade` (or "
        "upgrade_store(S)), after stopping the processes that use it",
        path=old,
        expected=FORMAT_TEXT.strip(),
        actual=OLD_FORMAT_TEXT.strip(),
    )


def init_store(S: StorageSettings, *, check_not_exist: bool = False) -> None:
    """Create the store folders and the FORMAT file (idempotent).

    Raises:
        StoreVersionError: the root holds a ``store-v1`` store (to upgrade, not
            to hide behind a new empty store).
    """
    fmt = os.path.join(S.storage, FORMAT_FILE)
    if not os.path.exists(fmt):
        old = old_store(S)
        if old is not None:
            raise _upgrade_error(S, old)
    if os.path.exists(fmt):
        if check_not_exist:
            raise StoreError(
                f"a store already exists at {S.storage!r} (check_not_exist=True)",
                path=S.storage,
            )
        _CHECKED.discard(S.storage)
        check_store(S)
    else:
        if os.path.isdir(S.storage) and any(not n.startswith(".") for n in os.listdir(S.storage)):
            raise StoreError(
                f"{S.storage!r} is not empty and is not a pylightnix {STORE_VERSION} store: "
                "choose an empty or new folder",
                path=S.storage,
            )
        os.makedirs(S.storage, exist_ok=True)
        from pylightnix.store.fsops import atomic_write

        try:
            atomic_write(fmt, FORMAT_TEXT.encode(), mode=0o444)
        except FileExistsError:
            pass
    for d in (
        S.tmpdir,
        os.path.join(S.storage, LOCKS_DIR),
        os.path.join(S.storage, ROOTS_DIR),
        os.path.join(S.storage, TEMPROOTS_DIR),
    ):
        os.makedirs(d, exist_ok=True)
    _CHECKED.discard(S.storage)
    check_store(S)


def outside_store_problem(path: str, S: StorageSettings | None = None) -> str | None:
    """Why reading ``path`` (a path into the store) would leave the store (or ``None``)."""
    real = os.path.realpath(path)
    root = os.path.realpath(fsS(S).storage)
    if real != root and not real.startswith(root + os.sep):
        return f"is a symlink leading outside the store (to {real!r})"
    return None

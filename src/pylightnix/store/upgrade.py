"""Upgrade a ``store-v1`` store to ``store-v2`` in place (``pylightnix upgrade``).

``store-v2`` differs from ``store-v1`` only in the per-derivation files that
index realizations (docs/store-format.md, "store-v2"): the marker folders
``by-context/<chash>/<rhash>`` and ``by-context-failed/...``, the cache
``facts.tsv`` and the records ``chosen-<chash>-<pick>.json`` become one
``index.tsv``. Realizations, configs, roots and locks are kept as they are:
no object is copied or re-hashed, so an upgrade costs one pass over the
derivation folders.

Steps, each safe to interrupt (running the upgrade again resumes):

1. refuse when a process uses the store (a live temporary-roots record, or
   the GC lock held), and hold the collector and GC locks to the end;
2. write each derivation's ``index.tsv`` (atomically) from its markers,
   facts and chosen records; ``store-v1`` code never reads that file;
3. replace ``FORMAT`` by ``pylightnix store-v2``: from here on, ``store-v1``
   code refuses the store (its version check), so it can never write the old
   index again;
4. rename ``<root>/store-v1`` to ``<root>/store-v2`` and leave a symlink
   ``store-v1 -> store-v2``, so result links made before keep resolving (a
   store with its own storage folder, ``PYLIGHTNIX_STORE``, stays where it is);
5. remove the old index files.

A crash between 3 and 4 leaves ``<root>/store-v1`` with the new ``FORMAT``:
the upgrade renames it when run again. Between 4 and 5 the old files are
leftovers that the upgrade (or ``store_reindex``) removes; they are never
read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from pylightnix.errors import UpgradeError
from pylightnix.refs import HASH_LEN, is_hashpart, is_rref, maybe_parse_dref_dirname
from pylightnix.store.chosen import record_text
from pylightnix.store.facts import read_bstart
from pylightnix.store.fsops import atomic_write, remove_tree
from pylightnix.store.gcgraph import read_json
from pylightnix.store.index import Index, index_lines
from pylightnix.store.layout import (
    _CHECKED,
    CHASH_LEN,
    INDEX_FILE,
    LOCKS_DIR,
    META_FILE,
    OLD_FORMAT_TEXT,
    OLD_VERSION,
    RESERVED,
    TEMPROOTS_DIR,
    format_text,
    old_store,
)
from pylightnix.store.locks import COLLECTOR_LOCK, GC_LOCK
from pylightnix.store.settings import FORMAT_FILE, FORMAT_TEXT, STORE_VERSION, StorageSettings
from pylightnix.types import RRef

OLD_INDEX_DIR = "by-context"
OLD_FAILED_INDEX_DIR = "by-context-failed"
OLD_FACTS_FILE = "facts.tsv"
OLD_CHOSEN = ("chosen-", ".json")


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade_store` did.

    Attributes:
        storage: the upgraded storage folder.
        derivations: derivation folders given an ``index.tsv``.
        realizations: realizations named in the new indexes.
        renamed_from: the old storage folder, when it was renamed (else ``None``).
    """

    storage: str
    derivations: int
    realizations: int
    renamed_from: str | None


@contextlib.contextmanager
def _exclusive(storage: str) -> Iterator[None]:
    """Hold the collector and GC locks of ``storage``; refuse when a process uses it."""
    fds: list[int] = []
    try:
        for name in (COLLECTOR_LOCK, GC_LOCK):
            path = os.path.join(storage, LOCKS_DIR, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UpgradeError(
                    f"cannot upgrade the store at {storage!r}: a process holds its lock "
                    f"{name!r} (a realize or a collection is running); stop the processes "
                    "using the store, then run `pylightnix upgrade` again",
                    path=path,
                ) from None
        live = _live_records(os.path.join(storage, TEMPROOTS_DIR))
        if live:
            raise UpgradeError(
                f"cannot upgrade the store at {storage!r}: {len(live)} running process(es) "
                f"use it (temporary roots {', '.join(sorted(live)[:3])}); stop them, then "
                "run `pylightnix upgrade` again",
                path=storage,
            )
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _live_records(d: str) -> list[str]:
    out = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for n in os.listdir(d):
            try:
                fd = os.open(os.path.join(d, n), os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, IsADirectoryError):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                out.append(n)
            finally:
                os.close(fd)
    return out


def upgrade_store(S: StorageSettings) -> UpgradeResult:
    """Upgrade the ``store-v1`` store of ``S``'s root (or at ``S.storage``) to ``store-v2``.

    Idempotent: a store already upgraded is left alone (its leftovers of an
    interrupted upgrade are removed).

    Raises:
        UpgradeError: a process uses the store, there is no such store, or a
            ``store-v2`` store holding objects already exists at ``S.storage``.
    """
    src = old_store(S)
    if src is None:
        src = _interrupted(S)
        if src is None:
            if format_text(S.storage) == FORMAT_TEXT:
                with _exclusive(S.storage):
                    _remove_old_files(S.storage)
                return UpgradeResult(S.storage, 0, 0, None)
            raise UpgradeError(
                f"no {OLD_VERSION} store to upgrade at {S.storage!r} or "
                f"{os.path.join(S.root, OLD_VERSION)!r}",
                path=S.storage,
            )
    if src != S.storage:
        _check_room(S.storage)
    with _exclusive(src):
        n_d = n_r = 0
        if format_text(src) == OLD_FORMAT_TEXT:
            n_d, n_r = _write_indexes(src)
            atomic_write(os.path.join(src, FORMAT_FILE), FORMAT_TEXT.encode(), mode=0o444)
        renamed = None
        if src != S.storage:
            _make_room(S.storage)
            os.rename(src, S.storage)
            with contextlib.suppress(FileExistsError):
                os.symlink(os.path.basename(S.storage), src)
            renamed = src
    with _exclusive(S.storage):
        _remove_old_files(S.storage)
    _CHECKED.discard(S.storage)
    return UpgradeResult(S.storage, n_d, n_r, renamed)


def _interrupted(S: StorageSettings) -> str | None:
    """``<root>/store-v1`` already holding the new ``FORMAT`` (a crash before its rename)."""
    p = os.path.join(S.root, OLD_VERSION)
    if p != S.storage and not os.path.islink(p) and format_text(p) == FORMAT_TEXT:
        return p
    return None


def _check_room(storage: str) -> None:
    """Refuse when something other than an empty ``store-v2`` store is at ``storage``."""
    if not os.path.lexists(storage):
        return
    names = [n for n in os.listdir(storage) if maybe_parse_dref_dirname(n) is not None]
    if names or format_text(storage) != FORMAT_TEXT:
        raise UpgradeError(
            f"cannot upgrade into {storage!r}: a {STORE_VERSION} store holding objects is "
            "already there; move it away (or export what it holds and import it after)",
            path=storage,
        )


def _make_room(storage: str) -> None:
    """Remove the empty ``store-v2`` store at ``storage`` (made before the upgrade), if any."""
    _check_room(storage)
    if os.path.lexists(storage):
        shutil.rmtree(storage)


def _write_indexes(storage: str) -> tuple[int, int]:
    """Give every derivation folder its ``index.tsv``; (derivations, realizations) indexed."""
    n_d = n_r = 0
    for n in sorted(os.listdir(storage)):
        if maybe_parse_dref_dirname(n) is None:
            continue
        ddir = os.path.join(storage, n)
        ix = _old_index(ddir)
        present = {e for e in os.listdir(ddir) if is_hashpart(e)}
        lines = index_lines(ix, present.__contains__)
        atomic_write(os.path.join(ddir, INDEX_FILE), "".join(lines).encode(), mode=0o644)
        n_d += 1
        n_r += sum(1 for x in lines if x[0] in "RF")
    return n_d, n_r


def _old_index(ddir: str) -> Index:
    """What a ``store-v1`` derivation folder's markers, facts and records say, as an index."""
    ix = Index()
    for sub, table in ((OLD_INDEX_DIR, ix.ctx), (OLD_FAILED_INDEX_DIR, ix.failed)):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for chash in os.listdir(os.path.join(ddir, sub)):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    for h in os.listdir(os.path.join(ddir, sub, chash)):
                        if is_hashpart(h) and len(chash) == CHASH_LEN:
                            table.setdefault(chash, {})[h] = None
    bstarts = _old_facts(os.path.join(ddir, OLD_FACTS_FILE), ix)
    for table in (ix.ctx, ix.failed):
        for hs in table.values():
            for h in hs:
                ix.bstart[h] = bstarts.get(h) or read_bstart(
                    os.path.join(ddir, h, RESERVED, META_FILE)
                )
    for name in sorted(os.listdir(ddir)):
        if name.startswith(OLD_CHOSEN[0]) and name.endswith(OLD_CHOSEN[1]):
            chash = name[len(OLD_CHOSEN[0]) :].partition("-")[0]
            try:
                rec = read_json(os.path.join(ddir, name))
            except (OSError, ValueError):
                continue
            if len(chash) != CHASH_LEN or not isinstance(rec, dict):
                continue
            t = rec.get("time", 0.0)
            t = float(t) if isinstance(t, int | float) else 0.0
            rrefs = rec.get("rrefs")
            sf = rec.get("score_file")
            if isinstance(rrefs, list) and (chash not in ix.chosen or ix.chosen[chash][0] <= t):
                picked = sorted(RRef(r) for r in rrefs if is_rref(r))
                ix.chosen[chash] = (t, record_text(picked, sf if isinstance(sf, str) else None))
    return ix


def _old_facts(path: str, ix: Index) -> dict[str, float]:
    """The build times a ``facts.tsv`` holds; its scores go into ``ix``. Lines of another
    shape (torn by a crash) are skipped, as ``store-v1`` did."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    bstarts: dict[str, float] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 3 or len(parts[0]) != HASH_LEN:
            continue
        h, key, value = parts
        try:
            number = None if value == "-" else float(value)
        except ValueError:
            continue
        if key == "bstart" and number is not None:
            bstarts[h] = number
        elif key.startswith("score:"):
            ix.scores.setdefault(key[len("score:") :], {})[h] = number
    return bstarts


def _remove_old_files(storage: str) -> None:
    """Remove the ``store-v1`` index files left in derivation folders."""
    for n in os.listdir(storage):
        if maybe_parse_dref_dirname(n) is None:
            continue
        ddir = os.path.join(storage, n)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for name in os.listdir(ddir):
                p = os.path.join(ddir, name)
                if name in (OLD_INDEX_DIR, OLD_FAILED_INDEX_DIR):
                    remove_tree(p)
                elif name == OLD_FACTS_FILE or (
                    name.startswith(OLD_CHOSEN[0]) and name.endswith(OLD_CHOSEN[1])
                ):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)

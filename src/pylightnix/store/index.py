"""The per-derivation index of a ``store-v2`` store: one append-only text file.

``<dhash>-<name>/index.tsv`` holds one line per fact, four tab-separated
fields (docs/store-format.md, decision record)::

    R  <rhash>   <chash32>  <build start>     a realization, built in that context
    F  <rhash>   <chash32>  <build start>     a failed realization (never a candidate)
    S  <rhash>   <file>     <number | ->      the score ``match_best(file)`` read
    C  <chash32> <time>     <json>            what the matcher picked in that context

The file is a cache of what the realization folders hold (their
``context.json`` and ``meta.json``), never the truth: ``store_reindex``
writes it again from the folders. What it answers without a filesystem call
per realization: the candidates of a derivation in a context, their build
times, their scores, and the last chosen record of each context.

Writers append whole lines with one ``write`` on a descriptor opened with
``O_APPEND`` (local filesystems do not interleave such writes; a torn last
line, from a crash, is skipped). A line of a realization is appended
*before* its folder is renamed into place, so a line whose folder is
missing means "being inserted, or crashed": lookups keep only lines whose
folder exists. Compaction (GC, reindex) writes a new file and renames it
over the old one while holding an exclusive ``flock`` on the old one;
appenders hold a shared ``flock`` while they write, and before letting it
go check that the file they wrote to is still the one in place (its link
count is not 0); a line that went to a replaced file is appended again to
the new one, so none is lost.

Readers take no lock: each process keeps what it parsed, per file, with the
file's inode and the length read, and reads only what was appended since
(a new inode means a compaction: read again from the start).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress

from pylightnix.refs import HASH_LEN, dref_dirname
from pylightnix.store.fsops import atomic_write
from pylightnix.store.layout import CHASH_LEN, INDEX_FILE
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef

REALIZED = "R"
FAILED = "F"
SCORE = "S"
CHOSEN = "C"

Fact = float | None
"""A cached score: a number, or ``None`` (the realization has no such file)."""


@dataclass(slots=True)
class Index:
    """What a process has parsed of one derivation's ``index.tsv``.

    Attributes:
        ino: the inode of the file read (0: none yet).
        offset: how many bytes of it were parsed (whole lines only).
        ctx: context hash (32 hex) -> realization hashes built in it, in order.
        failed: context hash -> failed realization hashes.
        bstart: realization hash -> build start time.
        scores: score file -> realization hash -> number (``None``: no such file).
        chosen: context hash -> (time, JSON text of the record), the last one appended.
        stale: bytes of chosen records superseded by a later line (see :func:`shrink_index`).
    """

    ino: int = 0
    offset: int = 0
    ctx: dict[str, dict[str, None]] = field(default_factory=dict)
    failed: dict[str, dict[str, None]] = field(default_factory=dict)
    bstart: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, Fact]] = field(default_factory=dict)
    chosen: dict[str, tuple[float, str]] = field(default_factory=dict)
    stale: int = 0


_CACHE: dict[str, Index] = {}
"""Index file path -> what this process parsed of it."""


def index_path(S: StorageSettings, dref: DRef) -> str:
    """The index file of a derivation (whether or not it exists)."""
    key = (S.storage, dref)
    p = _PATHS.get(key)
    if p is None:
        if len(_PATHS) > 100_000:
            _PATHS.clear()
        p = _PATHS[key] = f"{S.storage}{os.sep}{dref_dirname(dref)}{os.sep}{INDEX_FILE}"
    return p


_PATHS: dict[tuple[str, DRef], str] = {}
"""(storage, DRef) -> its index path: a lookup is on the path of every no-op realize."""


def forget_index(S: StorageSettings, dref: DRef | None = None) -> None:
    """Drop what this process parsed of the index of ``dref`` (default: every one of ``S``)."""
    if dref is not None:
        _CACHE.pop(index_path(S, dref), None)
        return
    prefix = S.storage + os.sep
    for p in [p for p in _CACHE if p.startswith(prefix)]:
        del _CACHE[p]


def cached_index(S: StorageSettings, dref: DRef) -> Index | None:
    """What this process parsed of the index of ``dref`` so far (no filesystem call)."""
    return _CACHE.get(index_path(S, dref))


def read_index(S: StorageSettings, dref: DRef) -> Index:
    """The index of ``dref`` as this process knows it, brought up to date (one ``stat``
    when nothing was appended; else one read of the new lines)."""
    path = index_path(S, dref)
    ix = _CACHE.get(path)
    if ix is not None:
        fresh = _fresh(path, ix)
        if fresh is not None:
            return fresh
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        ix = _CACHE[path] = Index()
        return ix
    except OSError:
        return ix if ix is not None else Index()  # unreadable: as if empty
    try:
        st = os.fstat(fd)  # of the file opened, which may have replaced the one stat'ed
        if ix is None or ix.ino != st.st_ino or st.st_size < ix.offset:
            ix = _CACHE[path] = Index(ino=st.st_ino)
        # What was appended after the fstat is read next time.
        data = os.pread(fd, st.st_size - ix.offset, ix.offset)
    except OSError:
        return ix if ix is not None else Index()
    finally:
        os.close(fd)
    _take(ix, data)
    return ix


def _fresh(path: str, ix: Index) -> Index | None:
    """``ix`` when one ``stat`` shows the file unchanged (or still absent, or unreadable);
    an empty index when it was removed; ``None`` when it must be read."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if ix.ino:
            ix = _CACHE[path] = Index()
        return ix
    except OSError:
        return ix  # unreadable: as read last
    return ix if ix.ino == st.st_ino and ix.offset == st.st_size else None


def _take(ix: Index, data: bytes) -> None:
    """Parse the complete lines of ``data`` (what follows ``ix.offset``) into ``ix``."""
    end = data.rfind(b"\n") + 1  # a last line without its newline is being written
    parse_into(data[:end].decode("utf-8", "replace"), ix)
    ix.offset += end


_KINDS = frozenset((REALIZED, FAILED, SCORE, CHOSEN))
_REALIZATIONS = frozenset((REALIZED, FAILED))
_SMALL = 2048
"""Texts shorter than this (bytes) are parsed line by line."""


def parse_into(text: str, ix: Index) -> None:
    """Add the facts of the complete lines ``text`` to ``ix``; malformed lines are skipped.

    An index of many realizations is read in bulk: the fields of well-formed
    text are split and filtered by kind with C-level passes (``str.split``,
    ``map``, ``itertools.compress``); any doubt falls back to a line-by-line
    reading.

    >>> ix = Index()
    >>> parse_into("R\\t" + "a" * 32 + "\\t" + "c" * 32 + "\\t1.5\\nbad\\n", ix)
    >>> list(ix.ctx["c" * 32]), ix.bstart["a" * 32]
    (['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'], 1.5)
    """
    if not text:
        return
    if len(text) < _SMALL:
        # A few lines (most derivations): the bulk machinery costs more than it saves.
        _parse_rows([p for p in (x.split("\t") for x in text.split("\n")[:-1]) if len(p) == 4], ix)
        return
    flat = text[:-1].replace("\n", "\t").split("\t")
    kinds = flat[0::4]
    present = set(kinds)
    # Three tabs a line on average, and every fourth field a kind: a line of
    # another shape (hand-edited; appends never interleave) shifts the fields,
    # which the kind and length checks of the bulk path then catch.
    if len(flat) != 4 * text.count("\n") or not present <= _KINDS:
        lines = text.split("\n")[:-1]
        _parse_rows([p for p in (line.split("\t") for line in lines) if len(p) == 4], ix)
        return
    fields = (flat[1::4], flat[2::4], flat[3::4])
    # Realizations and failed ones together (they share build times), in file order.
    for group in (_REALIZATIONS, frozenset(SCORE), frozenset(CHOSEN)):
        if present.isdisjoint(group):
            continue
        if present <= group:
            ks, (a, b, c) = kinds, fields
        else:
            sel = list(map(group.__contains__, kinds))
            ks = list(compress(kinds, sel))
            a, b, c = (list(compress(f, sel)) for f in fields)
        if not _bulk(ks, a, b, c, ix):
            _parse_rows(zip(ks, a, b, c, strict=True), ix)


def _bulk(kinds: list[str], a: list[str], b: list[str], c: list[str], ix: Index) -> bool:
    """File lines of one group at C speed; ``False`` (nothing filed) when any looks odd."""
    present = set(kinds)
    if present <= _REALIZATIONS:
        ok = set(map(len, a)) == {HASH_LEN} and set(map(len, b)) == {CHASH_LEN}
        times = _floats(c) if ok else None
        if times is None:
            return False
        ix.bstart.update(zip(a, times, strict=True))
        if present == {REALIZED} and len(set(b)) == 1:
            ix.ctx.setdefault(b[0], {}).update(dict.fromkeys(a))
        else:
            for kind, h, chash in zip(kinds, a, b, strict=True):
                (ix.ctx if kind == REALIZED else ix.failed).setdefault(chash, {})[h] = None
        return True
    if present == {CHOSEN}:
        times = _floats(b) if set(map(len, a)) == {CHASH_LEN} else None
        if times is None:
            return False
        # The last record of each context wins; what it replaces is stale.
        before = sum(len(v[1]) for v in ix.chosen.values())
        ix.chosen.update(zip(a, zip(times, c, strict=True), strict=True))
        ix.stale += before + sum(map(len, c)) - sum(len(v[1]) for v in ix.chosen.values())
        return True
    if present == {SCORE} and len(set(b)) == 1 and "-" not in c:
        values = _floats(c) if set(map(len, a)) == {HASH_LEN} else None
        if values is not None:
            ix.scores.setdefault(b[0], {}).update(zip(a, values, strict=True))
            return True
    return False


def _floats(texts: list[str]) -> list[float] | None:
    try:
        return list(map(float, texts))
    except ValueError:
        return None


def _parse_rows(rows: Iterable[Sequence[str]], ix: Index) -> None:
    for kind, a, b, c in rows:
        try:
            if kind in (REALIZED, FAILED):
                if len(a) != HASH_LEN or len(b) != CHASH_LEN:
                    continue
                ix.bstart[a] = float(c)
                (ix.ctx if kind == REALIZED else ix.failed).setdefault(b, {})[a] = None
            elif kind == SCORE:
                if len(a) == HASH_LEN:
                    ix.scores.setdefault(b, {})[a] = None if c == "-" else float(c)
            elif kind == CHOSEN and len(a) == CHASH_LEN:
                old = ix.chosen.get(a)
                if old is not None:
                    ix.stale += len(old[1])
                ix.chosen[a] = (float(b), c)
        except ValueError:
            continue


def realization_line(rhash: str, chash: str, bstart: float, *, failed: bool = False) -> str:
    """The line that indexes a realization in its context."""
    return f"{FAILED if failed else REALIZED}\t{rhash}\t{chash[:CHASH_LEN]}\t{bstart!r}\n"


def score_line(rhash: str, filename: str, value: Fact) -> str:
    """The line that caches a realization's score (``filename`` holds no tab or newline)."""
    return f"{SCORE}\t{rhash}\t{filename}\t{'-' if value is None else repr(value)}\n"


def chosen_line(chash: str, time: float, text: str) -> str:
    """The line of a chosen record given as its JSON text (``chosen.record_text``; JSON
    escapes tabs and newlines, so the record is one field)."""
    return f"{CHOSEN}\t{chash[:CHASH_LEN]}\t{time!r}\t{text}\n"


def append_index(S: StorageSettings, dref: DRef, lines: Sequence[str]) -> None:
    """Append ``lines`` to the index of ``dref`` in one write (see the module docstring).

    When nothing else was appended since this process last read the index,
    its parsed copy takes the new lines too (no read back).

    Raises:
        OSError: the derivation folder is missing or the store is not writable.
    """
    path = index_path(S, dref)
    data = "".join(lines).encode()
    for _ in range(1000):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.write(fd, data)
            st = os.fstat(fd)
        finally:
            os.close(fd)  # releases the lock
        if st.st_nlink == 0:
            # The file was replaced by a compaction before we held the lock: the
            # line went to the old one, which nobody reads. Append to the new one.
            continue
        ix = _CACHE.get(path)
        if ix is not None and ix.ino == st.st_ino and ix.offset + len(data) == st.st_size:
            _take(ix, data)
        elif ix is not None and ix.ino == 0 and st.st_size == len(data):
            ix.ino = st.st_ino  # this append created the file
            _take(ix, data)
        return
    raise OSError(f"cannot append to {path!r}: it is replaced again and again")


def compact_index(
    S: StorageSettings, dref: DRef, keep: Callable[[str], bool], *, locked: Callable[[], None]
) -> bool:
    """Rewrite the index of ``dref`` with only the realizations ``keep`` accepts.

    ``locked`` runs once the old file is locked against appenders (the GC
    reads the temporary roots there, so that a realization whose line was
    appended before the lock is seen as being inserted). Scores of kept
    realizations and the last chosen record of each context stay. Returns
    whether the file was rewritten (``False``: nothing to drop, or no file).
    """
    return _rewrite(S, dref, lambda old: index_lines(old, keep), locked, create=False)


SHRINK_MIN = 1 << 16
"""Superseded chosen records worth a rewrite: at least this many bytes, and a third of the file."""


def shrink_index(S: StorageSettings, dref: DRef) -> bool:
    """Drop superseded chosen records when they fill most of the index (``match_all`` over
    many realizations writes a long record each time a realization is added).

    Every realization line is kept (a line of an insertion in flight included),
    so this needs no knowledge of other processes; returns whether it rewrote.
    """
    ix = read_index(S, dref)
    if ix.stale < SHRINK_MIN or 3 * ix.stale < ix.offset:
        return False
    return compact_index(S, dref, lambda _: True, locked=lambda: None)


def rebuild_index(
    S: StorageSettings, dref: DRef, build: Callable[[Index], Index], *, locked: Callable[[], None]
) -> None:
    """Replace the index of ``dref`` by what ``build`` makes of the current one (reindex).

    The file is made empty if missing, so that it can be locked against
    appenders while ``locked`` runs (it reads the temporary roots).
    """
    _rewrite(S, dref, lambda old: index_lines(build(old), lambda _: True), locked, create=True)


def _rewrite(
    S: StorageSettings,
    dref: DRef,
    lines_of: Callable[[Index], list[str]],
    locked: Callable[[], None],
    *,
    create: bool,
) -> bool:
    """Replace the index of ``dref`` by ``lines_of`` its current content, under an
    exclusive ``flock`` of the file in place; whether it changed (see the module docstring)."""
    path = index_path(S, dref)
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | os.O_CLOEXEC
    for _ in range(1000):
        try:
            fd = os.open(path, flags, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            if st.st_nlink == 0:
                continue  # replaced meanwhile: lock the one in place
            locked()
            data = os.pread(fd, st.st_size, 0)
            old = Index()
            _take(old, data)
            text = "".join(lines_of(old)).encode()
            if text == data:
                return False
            atomic_write(path, text, mode=0o644, durable=S.durable)
            _CACHE.pop(path, None)
            return True
        finally:
            os.close(fd)
    raise OSError(f"cannot rewrite {path!r}: it is replaced again and again")


def index_lines(ix: Index, keep: Callable[[str], bool]) -> list[str]:
    """The lines of a compact file holding what ``ix`` knows of the realizations ``keep``
    accepts: each fact once, in a stable order; a chosen record stays while one of the
    realizations it names does."""
    out: list[str] = []
    for failed, table in ((False, ix.ctx), (True, ix.failed)):
        for chash in sorted(table):
            for h in sorted(table[chash]):
                if keep(h):
                    out.append(realization_line(h, chash, ix.bstart.get(h, 0.0), failed=failed))
    for filename in sorted(ix.scores):
        vals = ix.scores[filename]
        out.extend(score_line(h, filename, vals[h]) for h in sorted(vals) if keep(h))
    for chash in sorted(ix.chosen):
        t, text = ix.chosen[chash]
        if any(keep(h) for h in _chosen_rhashes(text)):
            out.append(chosen_line(chash, t, text))
    return out


def _chosen_rhashes(text: str) -> list[str]:
    """The realization hashes a chosen record names (none when it is malformed)."""
    try:
        rrefs = json.loads(text).get("rrefs")
    except (ValueError, AttributeError):
        return []
    if not isinstance(rrefs, list):
        return []
    return [r[5 : 5 + HASH_LEN] for r in rrefs if isinstance(r, str) and r.startswith("rref:")]

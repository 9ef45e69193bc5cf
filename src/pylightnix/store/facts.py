"""A per-derivation cache of what matchers rank realizations by: build times and scores.

Realizations are immutable, so what is read from one (its build start time
in ``meta.json``, the number in a score file that ``match_best`` ranks by)
never changes. Each derivation folder keeps those values in one append-only
text file, ``<dhash>-<name>/facts.tsv``, one line per fact::

    <rhash> TAB bstart TAB <seconds since the epoch>
    <rhash> TAB score:<file> TAB <number, or "-" when the file is missing>

and each process keeps what it has read of that file in memory. Matchers
thus see the build times and scores of all their candidates with no
filesystem call per candidate: a fact missing from memory makes one read of
the file's new lines, and a fact missing from the file is read from the
realization once, ever, and appended. (Build times of a derivation asked for
at most ``FEW`` at a time and without a file yet are read directly and kept
only in memory: a file per derivation would cost a new inode each, for
reads that are as cheap as the file's.)

The file is a cache, never the truth: :func:`rebuild_facts` (run by
``store_reindex``) rewrites it from the realizations; a missing or unwritable
file (a read-only store) only costs reads; lines of realizations deleted
later are ignored (lookups are by the realizations listed now); a torn or
malformed line (a crash mid-append) is skipped, so its fact is read again.
The later of two lines for the same fact wins (a realization deleted and
built again has a new build time). Appends are single ``write`` calls on a
file opened with ``O_APPEND``, so on local filesystems concurrent writers do
not interleave lines (and a line that did would be skipped as malformed).
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from pylightnix.errors import RefError
from pylightnix.refs import (
    HASH_LEN,
    dref_dirname,
    mkrref,
    parse_dref,
    parse_rref,
    rref2dref,
    rref_hashes,
)
from pylightnix.store.fsops import atomic_write
from pylightnix.store.layout import (
    FACTS_FILE,
    META_FILE,
    RESERVED,
    outside_store_problem,
    rref2path_,
)
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

BSTART = "bstart"
SCORE = "score:"
FEW = 4
"""Build times are written to a new facts file only for more candidates than this."""

Fact = float | None
"""A cached value: a number, or ``None`` (a score file the realization does not have)."""


class ScoreOutsideStoreError(ValueError):
    """A score file that is a symlink leading out of the store (never read)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path!r} {why}")
        self.path = path
        self.why = why


class ScoreNotANumberError(ValueError):
    """A score file whose text is not a number (``match_best`` turns it into a MatcherError)."""

    def __init__(self, path: str, text: str) -> None:
        super().__init__(f"{path!r} holds {text[:40]!r}, not a number")
        self.path = path
        self.text = text


@dataclass
class _Facts:
    """What this process has read of one derivation's facts file."""

    offset: int = 0
    values: dict[str, dict[str, Fact]] = field(default_factory=dict)
    """fact key -> rhash -> value."""


_CACHE: dict[tuple[str, str], _Facts] = {}
_BY_RREF: dict[tuple[str, str], dict[RRef, Fact]] = {}
"""(storage, fact key) -> RRef -> value: what lookups answered, for the next ones."""


def forget_facts(S: StorageSettings, dref: DRef | None = None) -> None:
    """Drop what this process holds of the facts of ``dref`` (default: all of ``S``)."""
    for key in [k for k in _CACHE if k[0] == S.storage]:
        if dref is None or key[1] == dref_dirname(dref):
            del _CACHE[key]
    for key in [k for k in _BY_RREF if k[0] == S.storage]:
        del _BY_RREF[key]


def _path(S: StorageSettings, dirname: str) -> str:
    return os.path.join(S.storage, dirname, FACTS_FILE)


def _refresh(S: StorageSettings, dirname: str, facts: _Facts) -> None:
    """Read the lines appended to the facts file since this process last read it."""
    try:
        with open(_path(S, dirname), "rb") as f:
            if os.fstat(f.fileno()).st_size < facts.offset:
                # Rewritten by a reindex: read it again from the start.
                facts.offset = 0
                facts.values.clear()
            f.seek(facts.offset)
            data = f.read()
    except OSError:
        return  # missing or unreadable: a cold cache
    end = data.rfind(b"\n") + 1  # a last line without its newline is still being written
    _parse_into(data[:end].decode("utf-8", "replace"), facts.values)
    facts.offset += end


def _number(text: str) -> Fact:
    return None if text == "-" else float(text)


def _parse_into(text: str, values: dict[str, dict[str, Fact]]) -> None:
    """Add the facts of the complete lines ``text`` to ``values``; malformed lines are skipped.

    A lookup may parse thousands of lines, so well-formed text is split in
    bulk (C-level passes); any doubt falls back to checking line by line.

    >>> v = {}
    >>> _parse_into("a" * 32 + "\\tbstart\\t1.5\\nbad\\n" + "b" * 32 + "\\tscore:f\\t-\\n", v)
    >>> v == {"bstart": {"a" * 32: 1.5}, "score:f": {"b" * 32: None}}
    True
    """
    lines = text.split("\n")[:-1]
    if set(map(_TAB_COUNT, lines)) == {2}:
        hs, ks, vs = (text[:-1].replace("\n", "\t").split("\t")[i::3] for i in range(3))
        keys = set(ks)
        if set(map(len, hs)) == {HASH_LEN} and all(_known_key(k) for k in keys):
            try:
                if keys == {BSTART}:
                    values.setdefault(BSTART, {}).update(zip(hs, map(float, vs), strict=True))
                else:
                    for h, k, v in zip(hs, ks, map(_number, vs), strict=True):
                        if v is not None or k != BSTART:
                            values.setdefault(k, {})[h] = v
                return
            except ValueError:
                pass  # some value is not a number: line by line below
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 3 or len(parts[0]) != HASH_LEN or not _known_key(parts[1]):
            continue
        try:
            value = _number(parts[2])
        except ValueError:
            continue
        if value is not None or parts[1] != BSTART:
            values.setdefault(parts[1], {})[parts[0]] = value


_TAB_COUNT = operator.methodcaller("count", "\t")


def _known_key(key: str) -> bool:
    return key == BSTART or key.startswith(SCORE)


def _line(rhash: str, key: str, value: Fact) -> str:
    return f"{rhash}\t{key}\t{'-' if value is None else repr(value)}\n"


def _append(S: StorageSettings, dirname: str, lines: list[str]) -> None:
    """Append lines to the facts file in one write; a store we cannot write is left alone."""
    try:
        fd = os.open(
            _path(S, dirname), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
    except OSError:
        return  # read-only store, or the derivation was removed: the cache just stays cold
    try:
        os.write(fd, "".join(lines).encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def lookup(
    S: StorageSettings,
    dref: DRef,
    rhashes: list[str],
    key: str,
    read: Callable[[str], Fact],
) -> list[Fact]:
    """The fact ``key`` of each realization ``rhashes`` of ``dref``, reading each at most once.

    Args:
        S: the store.
        dref: the derivation the realizations belong to.
        rhashes: their realization hashes.
        key: ``"bstart"`` or ``"score:<file>"``.
        read: reads the fact from a realization (given its hash) when it is
            not cached yet; what it raises propagates and nothing is cached.
    """
    dirname = dref_dirname(dref)
    facts = _CACHE.get((S.storage, dirname))
    if facts is None:
        facts = _CACHE[(S.storage, dirname)] = _Facts()
    known = facts.values.get(key)
    if key == BSTART and len(rhashes) <= FEW and facts.offset == 0:
        # A few build times: reading them is as cheap as reading the file.
        known = facts.values.setdefault(key, {})
        known.update((h, read(h)) for h in rhashes if h not in known)
    elif known is None or any(h not in known for h in rhashes):
        _refresh(S, dirname, facts)
        known = facts.values.setdefault(key, {})
        missing = [h for h in dict.fromkeys(rhashes) if h not in known]
        if missing:
            new = [(h, read(h)) for h in missing]
            known.update(new)
            # Build times of a derivation with a few realizations are as cheap to
            # read as the file would be: do not make a file (an inode) for them.
            if key != BSTART or len(rhashes) > FEW or facts.offset > 0:
                _append(S, dirname, [_line(h, key, v) for h, v in new])
    return [known[h] for h in rhashes]


def _read_bstart(S: StorageSettings, dref: DRef) -> Callable[[str], Fact]:
    def read(rhash: str) -> Fact:
        p = os.path.join(S.storage, dref_dirname(dref), rhash, RESERVED, META_FILE)
        try:
            with open(p, "rb") as f:
                meta = json.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            dhash, name = parse_dref(dref)
            rref = mkrref(rhash, dhash, name)  # type: ignore[arg-type]
            raise RefError(f"{rref} is not in the store at {S.storage!r}", ref=rref) from None
        return float(meta.get("build_start", 0.0))

    return read


def _memo(
    S: StorageSettings, rrefs: list[RRef], key: str, fill: Callable[[], list[Fact]]
) -> list[Fact]:
    """Answer from this process's memo of earlier answers; ``fill`` computes them otherwise."""
    memo = _BY_RREF.get((S.storage, key))
    if memo is not None:
        got = list(map(memo.get, rrefs))
        if None not in got or (key != BSTART and all(r in memo for r in rrefs)):
            return got
    values = fill()
    _BY_RREF.setdefault((S.storage, key), {}).update(zip(rrefs, values, strict=True))
    return values


def bstarts(S: StorageSettings, rrefs: list[RRef]) -> list[float]:
    """Build start times of realizations (seconds since the epoch), from the facts cache."""

    def fill() -> list[Fact]:
        out: list[Fact] = []
        for dref, hashes in _by_derivation(rrefs):
            out.extend(v or 0.0 for v in lookup(S, dref, hashes, BSTART, _read_bstart(S, dref)))
        return out

    return _memo(S, rrefs, BSTART, fill)  # type: ignore[return-value]


def dref_bstarts(S: StorageSettings, dref: DRef, rrefs: list[RRef]) -> list[float]:
    """Build start times of realizations of one derivation (:func:`bstarts` without the memo).

    For walks over a whole store, which ask once per derivation.
    """
    hashes = rref_hashes(rrefs, dref)
    if hashes is None:
        return bstarts(S, rrefs)
    return [v or 0.0 for v in lookup(S, dref, list(hashes), BSTART, _read_bstart(S, dref))]


def cacheable_score_file(filename: str) -> bool:
    """Whether scores read from ``filename`` can be cached (a line holds no tab or newline)."""
    return not any(c in filename for c in "\t\n\r")


def scores(S: StorageSettings, rrefs: list[RRef], filename: str) -> list[Fact]:
    """The number each realization holds in its file ``filename`` (``None``: no such file).

    Each realization's file is read at most once, ever (see the module docstring).

    Raises:
        ScoreNotANumberError: a file does not hold a number.
    """

    def fill() -> list[Fact]:
        out: list[Fact] = []
        for dref, hashes in _by_derivation(rrefs):
            dhash, name = parse_dref(dref)

            def read(h: str, dhash: str = dhash, name: str = name) -> Fact:
                return read_score_file(S, mkrref(h, dhash, name), filename)  # type: ignore[arg-type]

            if cacheable_score_file(filename):
                out.extend(lookup(S, dref, hashes, SCORE + filename, read))
            else:
                out.extend(read(h) for h in hashes)
        return out

    if not cacheable_score_file(filename):
        return fill()
    return _memo(S, rrefs, SCORE + filename, fill)


def _by_derivation(rrefs: list[RRef]) -> list[tuple[DRef, list[str]]]:
    """``rrefs`` as runs of (derivation, realization hashes), in order."""
    if not rrefs:
        return []
    first = rref2dref(rrefs[0])
    hashes = rref_hashes(rrefs, first)
    if hashes is not None:  # the usual case: candidates of one derivation
        return [(first, list(hashes))]
    runs: list[tuple[DRef, list[str]]] = []
    for r in rrefs:
        d = rref2dref(r)
        if not runs or runs[-1][0] != d:
            runs.append((d, []))
        runs[-1][1].append(parse_rref(r)[0])
    return runs


def rebuild_facts(S: StorageSettings, dref: DRef, rhashes: list[str]) -> None:
    """Rewrite the facts file of ``dref`` from its realizations ``rhashes`` (for ``store_reindex``).

    Build times are read again; scores are read again for every score file
    the old cache knew, so ``match_best`` finds them cached afterwards.
    """
    dirname = dref_dirname(dref)
    old = _Facts()
    _refresh(S, dirname, old)
    read = _read_bstart(S, dref)
    lines = [_line(h, BSTART, read(h)) for h in rhashes]
    dhash, name = parse_dref(dref)
    for key in sorted(k for k in old.values if k.startswith(SCORE)):
        for h in rhashes:
            rref = mkrref(h, dhash, name)  # type: ignore[arg-type]
            try:
                lines.append(_line(h, key, read_score_file(S, rref, key[len(SCORE) :])))
            except ScoreNotANumberError:
                continue  # not a number: match_best reports it when it ranks
    atomic_write(_path(S, dirname), "".join(lines).encode(), mode=0o644)
    forget_facts(S, dref)


def read_score_file(S: StorageSettings, rref: RRef, filename: str) -> Fact:
    """The number in the text file ``filename`` of a realization (``None`` when it has none).

    Raises:
        ScoreNotANumberError: the file does not hold a number.
        ScoreOutsideStoreError: the file is a symlink leading out of the store.
    """
    p = os.path.join(rref2path_(rref, S), filename)
    why = outside_store_problem(p, S)
    if why is not None:
        raise ScoreOutsideStoreError(p, why)
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        return float(text)
    except ValueError:
        raise ScoreNotANumberError(p, text) from None

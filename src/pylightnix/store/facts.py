"""What matchers rank realizations by, build times and scores, from the derivation's index.

Realizations are immutable, so what is read of one (its build start time,
the number in a score file that ``match_best`` ranks by) never changes. The
derivation's ``index.tsv`` (``store/index.py``) holds each realization's
build start time in its line, and each score once read::

    S TAB <rhash> TAB <file> TAB <number, or "-" when the file is missing>

so matchers see the build times and scores of all their candidates with no
filesystem call per candidate: the index is read once per process (then
only its new lines), a score missing from it is read from the realization
once, ever, and appended. A realization without a line (inserted by
hand, or its line dropped) has its build time read from its ``meta.json``
and kept in memory only.

The index is a cache, never the truth: ``store_reindex`` writes it again
from the realizations, keeping the scores it knew; an unwritable index (a
read-only store) only costs reads; a torn or malformed line (a crash
mid-append) is skipped, so its fact is read again; the later of two lines
for the same fact wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from pylightnix.errors import RefError
from pylightnix.refs import (
    dref_dirname,
    mkrref,
    parse_dref,
    parse_rref,
    rref2dref,
    rref_hashes,
)
from pylightnix.store.index import (
    Fact,
    append_index,
    forget_index,
    read_index,
    score_line,
)
from pylightnix.store.layout import META_FILE, RESERVED, outside_store_problem, rref2path_
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

__all__ = ["Fact", "bstarts", "dref_bstarts", "forget_facts", "read_score_file", "scores"]


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


_BSTART_MEMO: dict[tuple[str, str], float] = {}
"""(storage, rhash) -> build start time read from ``meta.json`` (realizations without a line)."""


def forget_facts(S: StorageSettings, dref: DRef | None = None) -> None:
    """Drop what this process holds of the index of ``dref`` (default: all of ``S``)."""
    forget_index(S, dref)
    for key in [k for k in _BSTART_MEMO if k[0] == S.storage]:
        del _BSTART_MEMO[key]


def bstart_of(meta: object) -> float:
    """The build start time a parsed ``meta.json`` holds (0 when it has none)."""
    v = meta.get("build_start", 0.0) if isinstance(meta, dict) else 0.0
    return float(v) if isinstance(v, int | float) else 0.0


def _bstart_at(path: str) -> float:
    with open(path, "rb") as f:
        return bstart_of(json.loads(f.read()))


def read_bstart(path: str) -> float:
    """The build start time in the ``meta.json`` at ``path`` (0 when it cannot be read)."""
    try:
        return _bstart_at(path)
    except (OSError, ValueError):
        return 0.0


def _read_bstart(S: StorageSettings, dref: DRef) -> Callable[[str], float]:
    def read(rhash: str) -> float:
        p = os.path.join(S.storage, dref_dirname(dref), rhash, RESERVED, META_FILE)
        try:
            return _bstart_at(p)
        except (FileNotFoundError, NotADirectoryError):
            dhash, name = parse_dref(dref)
            rref = mkrref(rhash, dhash, name)  # type: ignore[arg-type]
            raise RefError(f"{rref} is not in the store at {S.storage!r}", ref=rref) from None

    return read


def _dref_bstarts(S: StorageSettings, dref: DRef, hashes: list[str]) -> list[float]:
    known = read_index(S, dref).bstart
    if all(map(known.__contains__, hashes)):
        return list(map(known.__getitem__, hashes))
    read = _read_bstart(S, dref)
    out = []
    for h in hashes:
        v = known.get(h)
        if v is None:
            v = _BSTART_MEMO.get((S.storage, h))
            if v is None:
                v = _BSTART_MEMO[(S.storage, h)] = read(h)
        out.append(v)
    return out


def bstarts(S: StorageSettings, rrefs: list[RRef]) -> list[float]:
    """Build start times of realizations (seconds since the epoch), from the index."""
    out: list[float] = []
    for dref, hashes in _by_derivation(rrefs):
        out.extend(_dref_bstarts(S, dref, hashes))
    return out


def dref_bstarts(S: StorageSettings, dref: DRef, rrefs: list[RRef]) -> list[float]:
    """Build start times of realizations of one derivation (for walks over a whole store)."""
    hashes = rref_hashes(rrefs, dref)
    if hashes is None:
        return bstarts(S, rrefs)
    return _dref_bstarts(S, dref, list(hashes))


def cacheable_score_file(filename: str) -> bool:
    """Whether scores read from ``filename`` can be cached (a line holds no tab or newline)."""
    return bool(filename) and not any(c in filename for c in "\t\n\r")


def scores(S: StorageSettings, rrefs: list[RRef], filename: str) -> list[Fact]:
    """The number each realization holds in its file ``filename`` (``None``: no such file).

    Each realization's file is read at most once, ever (see the module docstring).

    Raises:
        ScoreNotANumberError: a file does not hold a number.
    """
    out: list[Fact] = []
    for dref, hashes in _by_derivation(rrefs):
        dhash, name = parse_dref(dref)

        def read(h: str, dhash: str = dhash, name: str = name) -> Fact:
            return read_score_file(S, mkrref(h, dhash, name), filename)  # type: ignore[arg-type]

        if not cacheable_score_file(filename):
            out.extend(read(h) for h in hashes)
            continue
        known = read_index(S, dref).scores.get(filename, {})
        missing = [h for h in dict.fromkeys(hashes) if h not in known]
        if missing:
            new = {h: read(h) for h in missing}
            try:
                append_index(S, dref, [score_line(h, filename, v) for h, v in new.items()])
            except OSError:
                pass  # a read-only store: the scores are read again next time
            known = {**known, **new}
        out.extend(known[h] for h in hashes)
    return out


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

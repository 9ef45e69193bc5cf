"""Chosen records: which realizations a derivation's matcher picked, per context.

A matcher is Python code that lives in the user's stage, not in the store, so
a command that only has the store (``pylightnix runs NAME``) cannot ask it.
Realize therefore writes down each answer it uses, as a line of the
derivation's ``index.tsv`` (``store/index.py``)::

    C TAB <chash32> TAB <time> TAB {"rrefs": [...], "score_file": f}

The last line of a context is its record (docs/store-format.md). The record
is outside every hash and is a hint, never an input of realize:

* an unchanged answer costs nothing: the index is in memory (one ``stat``
  brings it up to date); a new answer appends one line;
* two processes realizing the same derivation in the same context at once
  with different answers leave both lines; the later one is the record,
  and each answer was a valid one;
* a crash leaves at most a torn last line, which readers skip;
* a read-only store (a shared dataset mount) keeps no record: writing is
  best effort;
* GC may later delete a recorded realization; readers keep only the ones
  that still exist, and a compaction keeps the last record of each context.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pylightnix.refs import is_rref
from pylightnix.store.index import (
    SHRINK_MIN,
    append_index,
    cached_index,
    chosen_line,
    read_index,
    shrink_index,
)
from pylightnix.store.layout import CHASH_LEN
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef


@dataclass(frozen=True)
class ChosenRecord:
    """One chosen record.

    Attributes:
        rrefs: the realizations the matcher picked, sorted.
        score_file: the file the matcher ranks by (``match_best("acc.txt")``), if any.
        time: when the record was written (seconds since the epoch).
    """

    rrefs: tuple[RRef, ...]
    score_file: str | None = None
    time: float = 0.0


_SEEN: dict[tuple[str, DRef, str], tuple[tuple[RRef, ...], str | None]] = {}
"""The answer this process last found recorded or wrote, per derivation and context."""


def _parse(t: float, text: str) -> ChosenRecord | None:
    try:
        d = json.loads(text)
    except ValueError:
        return None
    rs = d.get("rrefs") if isinstance(d, dict) else None
    if not isinstance(rs, list):
        return None
    sf = d.get("score_file")
    return ChosenRecord(
        tuple(sorted(RRef(r) for r in rs if isinstance(r, str) and is_rref(r))),
        sf if isinstance(sf, str) else None,
        t,
    )


def record_chosen(
    S: StorageSettings,
    dref: DRef,
    chash: str,
    rrefs: Sequence[RRef],
    *,
    score_file: str | None = None,
) -> None:
    """Write down that the matcher of ``dref`` picked ``rrefs`` in the context ``chash``.

    An unchanged answer costs no write (and nothing at all when this process
    saw it already).

    Args:
        S: the store.
        dref: the derivation.
        chash: the context hash of the realize step.
        rrefs: what its matcher picked.
        score_file: the file the matcher ranks realizations by, if it is one.
    """
    want = (tuple(sorted(rrefs)), score_file)
    text = record_text(want[0], score_file)
    # The lookup that preceded this call read the index: its copy is fresh enough
    # (a record written meanwhile by another process is a race either answer wins).
    ix = cached_index(S, dref) or read_index(S, dref)
    cur = ix.chosen.get(chash[:CHASH_LEN])
    if cur is not None and cur[1] == text:
        return  # recorded as this process writes it (the usual no-op)
    key = (S.storage, dref, chash[:CHASH_LEN])
    if _SEEN.get(key) == want:
        return
    if cur is None or _differs(cur, want):
        # Best effort: a read-only store realizes from what it has and keeps no record.
        try:
            append_index(S, dref, [chosen_line(chash, time.time(), text)])
        except OSError:
            return
        # Read back only when it could matter: long records superseded many times.
        if _cached_stale(S, dref) >= SHRINK_MIN:
            with contextlib.suppress(OSError):
                shrink_index(S, dref)
    _SEEN[key] = want


def _differs(cur: tuple[float, str], want: tuple[tuple[RRef, ...], str | None]) -> bool:
    """Whether a record written in another form (another writer) names another answer."""
    rec = _parse(*cur)
    return rec is None or (rec.rrefs, rec.score_file) != want


def record_text(rrefs: Sequence[RRef], score_file: str | None) -> str:
    """The JSON text of a chosen record: ``json.dumps`` with sorted keys and no spaces,
    built directly (RRefs need no escaping).

    >>> import json
    >>> r = ["rref:" + "a" * 32 + "-" + "b" * 32 + "-x"]
    >>> record_text(r, 'acc "1".txt') == json.dumps(
    ...     {"rrefs": r, "score_file": 'acc "1".txt'}, sort_keys=True, separators=(",", ":")
    ... )
    True
    """
    body = ",".join(f'"{r}"' for r in rrefs)
    if score_file is None:
        return f'{{"rrefs":[{body}]}}'
    return f'{{"rrefs":[{body}],"score_file":{json.dumps(score_file)}}}'


def _cached_stale(S: StorageSettings, dref: DRef) -> int:
    ix = cached_index(S, dref)
    return SHRINK_MIN if ix is None else ix.stale


def chosen_in(S: StorageSettings, dref: DRef, chash: str) -> ChosenRecord | None:
    """The chosen record of ``dref`` in the context ``chash``, or ``None`` if never recorded."""
    return chosen_records(S, dref).get(chash[:CHASH_LEN])


def chosen_records(S: StorageSettings, dref: DRef) -> dict[str, ChosenRecord]:
    """The chosen record of ``dref`` per context hash (32 hex): the last one written."""
    out: dict[str, ChosenRecord] = {}
    for chash, (t, text) in read_index(S, dref).chosen.items():
        rec = _parse(t, text)
        if rec is not None:
            out[chash] = rec
    return out

"""Chosen records: which realizations a derivation's matcher picked, per context.

A matcher is Python code that lives in the user's stage, not in the store, so
a command that only has the store (``pylightnix runs NAME``) cannot ask it.
Realize therefore writes down each answer it uses::

    <storage>/<dhash>-<name>/chosen-<chash32>.json   {"rrefs": [...], "score_file": f, "time": t}

one file per derivation and context hash (docs/store-format.md). The record
is outside every hash and is a hint, never an input of realize:

* it is rewritten (atomically) only when the answer differs from the record,
  so a no-op realize costs one small read per derivation (cached per process);
* two processes realizing the same derivation in the same context at once
  may both write: the last rename wins, and each answer was a valid one;
* a crash leaves at most a ``.tmp-`` file beside it, which GC removes;
* a read-only store (a shared dataset mount) keeps no record: writing is
  best effort;
* GC may later delete a recorded realization; readers keep only the ones
  that still exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pylightnix.refs import dref_dirname, is_rref
from pylightnix.store.fsops import atomic_write
from pylightnix.store.layout import CHASH_LEN
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef

CHOSEN_PREFIX = "chosen-"
CHOSEN_SUFFIX = ".json"


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
"""What this process last read or wrote, to skip rereading the record on a no-op realize."""


def chosen_path(S: StorageSettings, dref: DRef, chash: str) -> str:
    """The chosen record of ``dref`` in the context ``chash``."""
    return os.path.join(
        S.storage, dref_dirname(dref), f"{CHOSEN_PREFIX}{chash[:CHASH_LEN]}{CHOSEN_SUFFIX}"
    )


def _read(path: str) -> ChosenRecord | None:
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    rs = d.get("rrefs") if isinstance(d, dict) else None
    if not isinstance(rs, list):
        return None
    sf = d.get("score_file")
    t = d.get("time")
    return ChosenRecord(
        tuple(sorted(RRef(r) for r in rs if is_rref(r))),
        sf if isinstance(sf, str) else None,
        float(t) if isinstance(t, int | float) else 0.0,
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

    Args:
        S: the store.
        dref: the derivation.
        chash: the context hash of the realize step.
        rrefs: what its matcher picked.
        score_file: the file the matcher ranks realizations by, if it is one.
    """
    want = (tuple(sorted(rrefs)), score_file)
    key = (S.storage, dref, chash[:CHASH_LEN])
    if _SEEN.get(key) == want:
        return
    path = chosen_path(S, dref, chash)
    old = _read(path)
    if old is None or (old.rrefs, old.score_file) != want:
        rec: dict[str, Any] = {"rrefs": list(want[0]), "time": time.time()}
        if score_file is not None:
            rec["score_file"] = score_file
        # Best effort: a read-only store realizes from what it has and keeps no record.
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps(rec, sort_keys=True).encode(), mode=0o444)
    _SEEN[key] = want


def chosen_in(S: StorageSettings, dref: DRef, chash: str) -> ChosenRecord | None:
    """The chosen record of ``dref`` in the context ``chash``, or ``None`` if never recorded."""
    return _read(chosen_path(S, dref, chash))


def chosen_records(S: StorageSettings, dref: DRef) -> dict[str, ChosenRecord]:
    """Every chosen record of ``dref``, by context hash (32 hex)."""
    d = os.path.join(S.storage, dref_dirname(dref))
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[str, ChosenRecord] = {}
    for n in sorted(names):
        if n.startswith(CHOSEN_PREFIX) and n.endswith(CHOSEN_SUFFIX):
            rec = _read(os.path.join(d, n))
            if rec is not None:
                out[n[len(CHOSEN_PREFIX) : -len(CHOSEN_SUFFIX)]] = rec
    return out

"""Chosen records: which realizations a derivation's matcher picked, per context.

A matcher is Python code that lives in the user's stage, not in the store, so
a command that only has the store (``pylightnix runs NAME``) cannot ask it.
Realize therefore writes down each answer it uses::

    <storage>/<dhash>-<name>/chosen-<chash32>-<pick16>.json
        {"rrefs": [...], "score_file": f, "time": t}

one file per derivation and context hash (docs/store-format.md), whose name
carries a hash of the answer (``pick16``). The record is outside every hash
and is a hint, never an input of realize:

* an unchanged answer is one ``stat`` of the expected name (nothing when the
  process saw it already); a new answer writes a new file atomically, then
  removes the context's older ones;
* two processes realizing the same derivation in the same context at once
  with different answers may leave both files (readers take the later
  ``time``) or, removing each other's, none; each answer was a valid one;
* a crash leaves at most a ``.tmp-`` file or a stale record beside it: GC
  removes ``.tmp-`` files, and readers take the latest record;
* a read-only store (a shared dataset mount) keeps no record: writing is
  best effort;
* GC may later delete a recorded realization; readers keep only the ones
  that still exist.
"""

from __future__ import annotations

import contextlib
import hashlib
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
PICK_LEN = 16


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


def _pick_id(rrefs: Sequence[RRef], score_file: str | None) -> str:
    text = "\n".join(sorted(rrefs)) + "\0" + (score_file or "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:PICK_LEN]


def chosen_path(S: StorageSettings, dref: DRef, chash: str, pick: str) -> str:
    """The chosen record of ``dref`` in the context ``chash`` with the pick id ``pick``."""
    name = f"{CHOSEN_PREFIX}{chash[:CHASH_LEN]}-{pick}{CHOSEN_SUFFIX}"
    return os.path.join(S.storage, dref_dirname(dref), name)


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


def _records(S: StorageSettings, dref: DRef) -> list[tuple[str, str, str]]:
    """``(chash32, pick, path)`` of every record file of ``dref``."""
    d = os.path.join(S.storage, dref_dirname(dref))
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for n in sorted(names):
        if n.startswith(CHOSEN_PREFIX) and n.endswith(CHOSEN_SUFFIX):
            chash, _, pick = n[len(CHOSEN_PREFIX) : -len(CHOSEN_SUFFIX)].partition("-")
            if len(chash) == CHASH_LEN and len(pick) == PICK_LEN:
                out.append((chash, pick, os.path.join(d, n)))
    return out


def record_chosen(
    S: StorageSettings,
    dref: DRef,
    chash: str,
    rrefs: Sequence[RRef],
    *,
    score_file: str | None = None,
) -> None:
    """Write down that the matcher of ``dref`` picked ``rrefs`` in the context ``chash``.

    An unchanged answer costs one ``stat`` (none when this process saw it already).

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
    pick = _pick_id(want[0], score_file)
    path = chosen_path(S, dref, chash, pick)
    if not os.path.exists(path):
        rec: dict[str, Any] = {"rrefs": list(want[0]), "time": time.time()}
        if score_file is not None:
            rec["score_file"] = score_file
        # Best effort: a read-only store realizes from what it has and keeps no record.
        try:
            atomic_write(path, json.dumps(rec, sort_keys=True).encode(), mode=0o444)
        except OSError:
            return
        for c, p, old in _records(S, dref):
            if c == chash[:CHASH_LEN] and p != pick:
                with contextlib.suppress(OSError):
                    os.unlink(old)
    _SEEN[key] = want


def chosen_in(S: StorageSettings, dref: DRef, chash: str) -> ChosenRecord | None:
    """The chosen record of ``dref`` in the context ``chash``, or ``None`` if never recorded."""
    return chosen_records(S, dref).get(chash[:CHASH_LEN])


def chosen_records(S: StorageSettings, dref: DRef) -> dict[str, ChosenRecord]:
    """The chosen record of ``dref`` per context hash (32 hex); of two records of one
    context (a race of two writers), the later one."""
    out: dict[str, ChosenRecord] = {}
    for chash, _, path in _records(S, dref):
        rec = _read(path)
        if rec is not None and (chash not in out or rec.time > out[chash].time):
            out[chash] = rec
    return out

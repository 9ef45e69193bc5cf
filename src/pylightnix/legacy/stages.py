"""The original's 0.2.x matchers, keys and inspection helpers, on this engine."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pylightnix.realize.matchers import BuildTimeKey, FileKey, Key, Match, TopN, match_some
from pylightnix.refs import rref_hash
from pylightnix.store.inspect import lsref
from pylightnix.store.links import linkrref, timestring
from pylightnix.store.query import rref2path, rrefbstart
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, Path, RRef


def latest() -> BuildTimeKey:
    """The key of :func:`pylightnix.match_latest`: the build start time."""
    return BuildTimeKey()


def best(filename: str) -> FileKey:
    """The key of :func:`pylightnix.match_best`: the number in a file of the realization."""
    return FileKey(filename)


@dataclass(frozen=True)
class ExactKey:
    """1 for the listed realizations, ``None`` (dropped) for others."""

    rrefs: frozenset[RRef]

    def __call__(self, S: StorageSettings, rref: RRef) -> int | None:
        return 1 if rref in self.rrefs else None


def exact(rrefs: Iterable[RRef]) -> ExactKey:
    """A key keeping only the listed realizations."""
    return ExactKey(frozenset(rrefs))


@dataclass(frozen=True)
class TextKey:
    """The RRef text (a deterministic tie-breaker)."""

    def __call__(self, S: StorageSettings, rref: RRef) -> str:
        return str(rref)


def texthash() -> TextKey:
    """A key ranking by the realization hash text."""
    return TextKey()


@dataclass(frozen=True)
class KeyTuple:
    """Several keys ranked one after another; ``None`` from any drops the candidate."""

    keys: tuple[Key, ...]

    def __call__(self, S: StorageSettings, rref: RRef) -> tuple[Any, ...] | None:
        out = []
        for k in self.keys:
            v = k(S, rref)
            if v is None:
                return None
            out.append(v)
        return tuple(out)


def match_n(n: int = 1, keys: Iterable[Key] = ()) -> Match:
    """The ``n`` best realizations by ``keys`` (0.2.x); any ``n`` without keys."""
    ks = tuple(keys)
    if not ks:
        return match_some(n)
    return Match(KeyTuple(ks), TopN(n))


def lsrref(rref: RRef, fn: Iterable[str] = (), S: StorageSettings | None = None) -> list[str]:
    """The entries of a sub-folder ``fn`` of a realization (its artifacts only)."""
    sub = list(fn)
    if not sub:
        return lsref(rref, S)
    return sorted(os.listdir(os.path.join(rref2path(rref, S), *sub)))


def lsdref_(dref: DRef, S: StorageSettings | None = None) -> list[str]:
    """The realization hashes of a derivation (its folder names)."""
    return [rref_hash(RRef(r)) for r in lsref(dref, S)]


def catrref_(rref: RRef, fn: Iterable[str], S: StorageSettings | None = None) -> list[str]:
    """The lines of the file ``fn`` of a realization."""
    with open(os.path.join(rref2path(rref, S), *fn), encoding="utf-8") as f:
        return f.read().splitlines()


def mksymlink(
    rref: RRef,
    tgtpath: str,
    name: str,
    withtime: bool = True,
    S: StorageSettings | None = None,
) -> Path:
    """The 0.2.x result link ``tgtpath/<build time>_<name>`` (a GC root here)."""
    nm = f"{timestring(rrefbstart(rref, S))}_{name}" if withtime else name
    return linkrref(rref, tgtpath, nm, S)

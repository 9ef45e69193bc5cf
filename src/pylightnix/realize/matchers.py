"""Matchers: which existing realizations of a derivation to use.

A matcher is called as ``matcher(S, rrefs)`` with the realizations of a
derivation built in the current context, and returns the chosen ones, or
``None`` (or an empty list) to ask for a build. Every matcher here is
``match(key, trim)``: candidates are ranked by ``key`` (higher first;
candidates whose key is ``None`` are left out), ties broken by RRef text so
the answer never depends on filesystem order, and ``trim`` picks from the
ranked list. All of them are picklable objects with a readable ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, overload

from pylightnix.errors import MatcherError
from pylightnix.store.layout import rref2path_
from pylightnix.store.query import rrefbstart
from pylightnix.store.settings import StorageSettings
from pylightnix.types import RRef

Key = Callable[[StorageSettings, RRef], Any]
Trim = Callable[[list[RRef]], "list[RRef] | None"]


@dataclass(frozen=True)
class Match:
    """A matcher made of a ranking ``key`` and a ``trim`` (see :func:`match`)."""

    key: Key
    trim: Trim

    def __call__(self, S: StorageSettings, rrefs: list[RRef]) -> list[RRef] | None:
        scored = []
        for r in rrefs:
            k = self.key(S, r)
            if k is not None:
                scored.append((k, r))
        # Highest key first; equal keys in ascending RRef order (deterministic).
        scored.sort(key=lambda kr: kr[1])
        scored.sort(key=lambda kr: kr[0], reverse=True)
        return self.trim([r for _, r in scored])


def match(key: Key, trim: Trim) -> Match:
    """A matcher that ranks candidates by ``key`` and picks with ``trim``.

    >>> m = match(NoKey(), TopN(2))
    >>> m(None, ["rref:b", "rref:a", "rref:c"])  # type: ignore[arg-type,list-item]
    ['rref:a', 'rref:b']
    """
    return Match(key, trim)


@dataclass(frozen=True)
class NoKey:
    """Every candidate ranks the same (ties by RRef text)."""

    def __call__(self, S: StorageSettings, rref: RRef) -> int:
        return 0


@dataclass(frozen=True)
class BuildTimeKey:
    """Rank by build start time, newest first."""

    def __call__(self, S: StorageSettings, rref: RRef) -> float:
        return rrefbstart(rref, S)


@dataclass(frozen=True)
class FileKey:
    """Rank by a number read from a text file of the realization (missing: left out)."""

    filename: str

    def __call__(self, S: StorageSettings, rref: RRef) -> float | None:
        p = os.path.join(rref2path_(rref, S), self.filename)
        try:
            with open(p, encoding="utf-8") as f:
                text = f.read().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            return float(text)
        except ValueError:
            raise MatcherError(
                f"match_best: {p!r} holds {text[:40]!r}, not a number: write the metric "
                "as plain text, e.g. '0.93'",
                dref=None,
            ) from None


@dataclass(frozen=True)
class TopN:
    """The first ``n`` ranked candidates, or ``None`` when there are fewer."""

    n: int

    def __call__(self, rrefs: list[RRef]) -> list[RRef] | None:
        return rrefs[: self.n] if len(rrefs) >= self.n else None


@dataclass(frozen=True)
class All:
    """Every ranked candidate, or ``None`` when there is none."""

    def __call__(self, rrefs: list[RRef]) -> list[RRef] | None:
        return list(rrefs) if rrefs else None


@dataclass(frozen=True)
class Only:
    """The single candidate; ``None`` when there is none; an error when there are several."""

    def __call__(self, rrefs: list[RRef]) -> list[RRef] | None:
        if len(rrefs) > 1:
            raise MatcherError(
                f"match_only found {len(rrefs)} realizations ({', '.join(rrefs[:3])}...) "
                "where it expects at most one: remove the extra ones with rmref, or use "
                "match_latest()",
                dref=None,
                rrefs=list(rrefs),
            )
        return list(rrefs) if rrefs else None


@dataclass(frozen=True)
class Exact:
    """Exactly these realizations, once all of them are candidates."""

    rrefs: tuple[RRef, ...]

    def __call__(self, S: StorageSettings, rrefs: list[RRef]) -> list[RRef] | None:
        have = set(rrefs)
        return sorted(self.rrefs) if all(r in have for r in self.rrefs) else None


def _check_n(n: int, who: str) -> int:
    if type(n) is not int or n < 1:
        raise MatcherError(f"{who}(n={n!r}): n must be a positive int", dref=None)
    return n


def match_latest(n: int = 1) -> Match:
    """The ``n`` most recently built realizations (build if fewer exist)."""
    return Match(BuildTimeKey(), TopN(_check_n(n, "match_latest")))


@overload
def match_all() -> Match: ...
@overload
def match_all(S: StorageSettings, rrefs: list[RRef]) -> list[RRef] | None: ...
def match_all(
    S: StorageSettings | None = None, rrefs: list[RRef] | None = None
) -> Match | list[RRef] | None:
    """All realizations (build if there is none).

    ``match_all()`` makes the matcher; ``match_all`` itself also is one (the
    original's spelling ``mkdrv(config, match_all, realizer)``).
    """
    m = Match(NoKey(), All())
    if rrefs is None:
        return m
    return m(S, rrefs)  # type: ignore[arg-type]


def match_some(n: int = 1) -> Match:
    """Any ``n`` realizations, deterministically the first by RRef (build if fewer)."""
    return Match(NoKey(), TopN(_check_n(n, "match_some")))


def match_only() -> Match:
    """The one realization; several are an error (deterministic builds)."""
    return Match(NoKey(), Only())


def match_exact(rrefs: Iterable[RRef]) -> Exact:
    """Exactly the given realizations."""
    return Exact(tuple(sorted(set(rrefs))))


def match_best(filename_or_key: str | Key, n: int = 1) -> Match:
    """The ``n`` realizations with the highest score.

    Args:
        filename_or_key: a file in each realization holding a number (e.g.
            ``"accuracy.txt"``), or a key ``(S, rref) -> number | None``.
        n: how many to pick (build if fewer realizations have a score).
    """
    key: Key = FileKey(filename_or_key) if isinstance(filename_or_key, str) else filename_or_key
    return Match(key, TopN(_check_n(n, "match_best")))

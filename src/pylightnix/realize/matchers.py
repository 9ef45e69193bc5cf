"""Matchers: which existing realizations of a derivation to use.

A matcher is called as ``matcher(S, rrefs)`` with the realizations of a
derivation built in the current context, and returns the chosen ones, or
``None`` (or an empty list) to ask for a build. Every matcher here is
``match(key, trim)``: candidates are ranked by ``key`` (higher first;
candidates whose key is ``None`` are left out), ties broken by RRef text so
the answer never depends on filesystem order, and ``trim`` picks from the
ranked list. All of them are picklable objects with a readable ``repr``.

A key may also rank all candidates in one call (``batch_keys(S, rrefs)``, one key
per candidate, or ``None`` when all rank the same): the keys here do, so
they read build times and scores from the per-derivation facts cache
(``store/facts.py``) with no filesystem call per candidate.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter, neg
from typing import Any, TypeVar, overload

from pylightnix.errors import MatcherError
from pylightnix.store.facts import (
    ScoreNotANumberError,
    ScoreOutsideStoreError,
    bstarts,
    scores,
)
from pylightnix.store.index import Index
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
        batch = getattr(self.key, "batch_keys", None)
        ks = batch(S, rrefs) if batch is not None else [self.key(S, r) for r in rrefs]
        return self._rank_trim(ks, rrefs)

    def _rank_trim(self, ks: list[Any] | None, items: list[_T]) -> list[_T] | None:
        """Rank ``items`` by their keys ``ks`` (``None``: all the same) and trim.

        ``items`` sort as their RRefs do: RRefs, or the hash parts of one
        derivation's realizations.
        """
        trim: Callable[[list[_T]], list[_T] | None] = self.trim  # type: ignore[assignment]
        if ks is None:  # every candidate ranks the same: ascending RRef order
            return trim(sorted(items))
        if isinstance(self.trim, TopN) and len(items) > 4 * self.trim.n:
            top = _top_numbers(ks, items, self.trim.n)
            if top is not None:
                return trim(top)
        scored = list(zip(ks, items, strict=True))
        if None in ks:
            scored = [kr for kr in scored if kr[0] is not None]
        # Highest key first; equal keys in ascending RRef order (deterministic).
        # Candidates from the store come sorted: the stable sort keeps that order.
        if sorted(items) != items:
            scored.sort(key=itemgetter(1))
        scored.sort(key=itemgetter(0), reverse=True)
        return trim(list(map(itemgetter(1), scored)))

    def index_pick(self, ix: Index, hashes: list[str]) -> list[str] | None:
        """What this matcher picks among realizations of one derivation, from its index
        alone: ``hashes`` are the hash parts the index lists in the context, some of
        which may not be in place (an insertion in flight, or one a crash left undone).

        The answer (hash parts) stands only if every pick is in place: a trim here
        keeps a prefix of the ranking, and a key ranks each candidate on its own, so
        picks that are in place are the picks among the candidates in place. ``None``
        when the index cannot tell (another key or trim, a score not read yet, an
        answer that is no answer): then ask the matcher with the checked candidates.
        """
        key, trim = type(self.key), type(self.trim)
        if trim not in (TopN, All, Only) or (trim is Only and len(hashes) > 1):
            return None
        ks: list[Any] | None
        if key is NoKey:
            ks = None
        elif key is BuildTimeKey:
            if not all(map(ix.bstart.__contains__, hashes)):
                return None
            ks = list(map(ix.bstart.__getitem__, hashes))
        elif key is FileKey:
            known = ix.scores.get(self.key.filename)  # type: ignore[attr-defined]
            if known is None or not all(map(known.__contains__, hashes)):
                return None
            ks = list(map(known.__getitem__, hashes))
        else:
            return None
        return self._rank_trim(ks, hashes) or None


_T = TypeVar("_T", bound=str)


def _top_numbers(ks: list[Any], items: list[_T], n: int) -> list[_T] | None:
    """The ``n`` best of many candidates ranked by plain numbers, as the full sort would
    rank them (highest key first, ties in ascending RRef order), in one pass; ``None``
    when a key is not a plain number (``None``, NaN, another type): then sort."""
    if not set(map(type, ks)) <= {int, float} or any(map(math.isnan, ks)):
        return None
    return [r for _, r in heapq.nsmallest(n, zip(map(neg, ks), items, strict=True))]


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

    def batch_keys(self, S: StorageSettings, rrefs: list[RRef]) -> None:
        return None


@dataclass(frozen=True)
class BuildTimeKey:
    """Rank by build start time, newest first."""

    def __call__(self, S: StorageSettings, rref: RRef) -> float:
        return bstarts(S, [rref])[0]

    def batch_keys(self, S: StorageSettings, rrefs: list[RRef]) -> list[float]:
        return bstarts(S, rrefs)


@dataclass(frozen=True)
class FileKey:
    """Rank by a number read from a text file of the realization (missing: left out)."""

    filename: str

    def __call__(self, S: StorageSettings, rref: RRef) -> float | None:
        return self.batch_keys(S, [rref])[0]

    def batch_keys(self, S: StorageSettings, rrefs: list[RRef]) -> list[float | None]:
        """Each candidate's score, read once ever (cached in the derivation's facts)."""
        try:
            return scores(S, rrefs, self.filename)
        except ScoreNotANumberError as e:
            raise MatcherError(
                f"match_best: {e.path!r} holds {e.text[:40]!r}, not a number: write the metric "
                "as plain text, e.g. '0.93'",
                dref=None,
            ) from None
        except ScoreOutsideStoreError as e:
            raise MatcherError(
                f"match_best: {e.path!r} {e.why}: a metric is read from the store only", dref=None
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


_MADE: dict[tuple[str, int], Match] = {}
"""Matchers made before, by kind and n: each is immutable, so one serves every stage
(a pipeline of 100,000 stages makes one, not 100,000)."""


def _made(kind: str, n: int, make: Callable[[], Match]) -> Match:
    m = _MADE.get((kind, n)) if type(n) is int else None
    if m is None:
        m = make()
        if len(_MADE) < 1024:
            _MADE[(kind, n)] = m
    return m


def match_latest(n: int = 1) -> Match:
    """The ``n`` most recently built realizations (build if fewer exist)."""
    return _made("latest", n, lambda: Match(BuildTimeKey(), TopN(_check_n(n, "match_latest"))))


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
    m = _made("all", 0, lambda: Match(NoKey(), All()))
    if rrefs is None:
        return m
    return m(S, rrefs)  # type: ignore[arg-type]


def match_some(n: int = 1) -> Match:
    """Any ``n`` realizations, deterministically the first by RRef (build if fewer)."""
    return _made("some", n, lambda: Match(NoKey(), TopN(_check_n(n, "match_some"))))


def match_only() -> Match:
    """The one realization; several are an error (deterministic builds)."""
    return _made("only", 0, lambda: Match(NoKey(), Only()))


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


def score_file(matcher: Any) -> str | None:
    """The file a matcher ranks realizations by (``match_best("acc.txt")``), else ``None``.

    >>> score_file(match_best("acc.txt")), score_file(match_latest())
    ('acc.txt', None)
    """
    if isinstance(matcher, Match) and isinstance(matcher.key, FileKey):
        return matcher.key.filename
    return None

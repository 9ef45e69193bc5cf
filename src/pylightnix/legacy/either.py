"""The original's ``Either`` API (``pylightnix.either``) over failure capture.

A LEFT value is a set of failed realizations (:func:`pylightnix.realizeE`,
:func:`pylightnix.mkdrvE`); a RIGHT value the good ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pylightnix.errors import PromiseError
from pylightnix.legacy.core import Output, OutputMatcher, OutputRealizer, output_validate
from pylightnix.realize.failures import CaptureFailures, is_failed, realizeE, rref_failure
from pylightnix.realize.registry import Closure
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef


@dataclass(frozen=True)
class Either:
    """RIGHT (``right``: an Output of good refs) or LEFT (``left``: ``(refs, error text)``)."""

    right: Output[Any] | None = None
    left: tuple[list[Any], str] | None = None


def mkright(o: Output[Any]) -> Either:
    """A RIGHT value."""
    return Either(right=o)


def mkleft(paths: list[Any], text: str) -> Either:
    """A LEFT value: the failed refs and the error text."""
    return Either(left=(list(paths), text))


def either_isRight(e: Either) -> bool:
    """Tell whether ``e`` is RIGHT."""
    return e.right is not None


def either_isLeft(e: Either) -> bool:
    """Tell whether ``e`` is LEFT."""
    return e.left is not None


def either_paths(e: Either) -> list[Any]:
    """The refs of ``e``, good or failed."""
    if e.right is not None:
        return list(e.right.val)
    return list(e.left[0]) if e.left is not None else []


def either_status(e: Either) -> str | None:
    """The error text of a LEFT value, ``None`` for RIGHT."""
    return e.left[1] if e.left is not None else None


def either_loadR(rrefs: Iterable[RRef], S: StorageSettings | None = None) -> Either:
    """RIGHT if none of the realizations failed, else LEFT with the failures' texts."""
    rr = list(rrefs)
    bad = [rref_failure(r, S) for r in rr if is_failed(r, S)]
    if not bad:
        return mkright(Output(rr))
    text = "\n".join(f"{f.rref}: {f.error}: {f.message}" for f in bad if f is not None)
    return mkleft(rr, text)


def either_validate(dref: DRef, e: Either, S: StorageSettings | None = None) -> Either:
    """A RIGHT value whose outputs lack promised files becomes LEFT (with the reason)."""
    if e.right is None:
        return e
    try:
        output_validate(dref, e.right, S)
    except PromiseError as err:
        return mkleft(list(e.right.val), str(err))
    return e


def either_realizer(f: Any) -> CaptureFailures:
    """An Output-typed realizer whose failed builds are recorded as failed realizations."""
    return CaptureFailures(OutputRealizer(f))


def either_matcher(f: Any) -> OutputMatcher:
    """An Output-typed matcher (failed realizations are chosen like any other)."""
    return OutputMatcher(f)


def realizeManyE(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> Either:
    """Realize a one-target closure recording failures; its realizations as an Either."""
    _, c, ctx, _ = realizeE(closure, **kwargs)
    rr: list[RRef] = []
    for t in c.targets:
        rr.extend(ctx.get(t, []))
    return either_loadR(rr, c.S)

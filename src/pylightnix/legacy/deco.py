"""The original's ``autodrv``/``realizeU`` (``pylightnix.deco``) over autostage."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from pylightnix.autostage import StageAttrs, autostage, stage_attrs
from pylightnix.realize.engine import as_closure, realize1
from pylightnix.realize.registry import Closure, Registry
from pylightnix.types import DRef, Matcher


def autodrv(
    f: Callable[..., Any] | None = None,
    *,
    sourcedeps: Iterable[Any] = (),
    nouts: int = 1,
    matcher: Matcher | None = None,
    r: Registry | None = None,
    **config: Any,
) -> Any:
    """Register the function as a derivation right away and return its DRef
    (``autodrv(f, ...)`` or ``@autodrv(...)``)."""

    def deco(g: Callable[..., Any]) -> DRef:
        # As the original: keyword values override the parameters' defaults; other
        # keywords are constant config entries.
        params = inspect.signature(g).parameters
        given = {k: v for k, v in config.items() if k in params}
        extra = {k: v for k, v in config.items() if k not in params}
        st = autostage(g, nouts=nouts, matcher=matcher, sourcedeps=sourcedeps, **extra)
        d: DRef = st(r, **given)
        return d

    return deco(f) if f is not None else deco


def realizeU(closure: Closure | tuple[Any, Closure], **kwargs: Any) -> StageAttrs:
    """Realize a one-target closure of an autostage; its attributes (``.syspath``, config keys)."""
    c = as_closure(closure)
    return stage_attrs(realize1(c, **kwargs), c.S)

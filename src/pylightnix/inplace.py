"""The seed's "inplace" API: one global registry for interactive use.

``instantiate_inplace(stage, ...)`` registers a stage's derivations in a
process-wide registry and returns its DRef; ``realize_inplace(dref)``
realizes the closure of that DRef. The registry follows the default store:
when the default changes (``store_initialize(custom_store=...)``,
``PYLIGHTNIX_ROOT``), a fresh registry is started for the new store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pylightnix.realize.engine import realize1, realizeMany
from pylightnix.realize.registry import Registry, closure_of, find_drefs, instantiate
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, RRef

_INPLACE: list[Registry | None] = [None]


def inplace_registry(S: StorageSettings | None = None) -> Registry:
    """The global registry of the inplace API (for the default store, or ``S``)."""
    s = fsS(S)
    r = _INPLACE[0]
    if r is None or s != r.S:
        r = Registry(s)
        _INPLACE[0] = r
    return r


def inplace_reset(S: StorageSettings | None = None) -> Registry:
    """Forget every derivation registered through the inplace API."""
    r = Registry(fsS(S))
    _INPLACE[0] = r
    return r


def instantiate_inplace(stage: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``stage(*args, **kwargs)`` in the global registry; return its result (a DRef)."""
    result, _ = instantiate(stage, *args, r=inplace_registry(), **kwargs)
    return result


def realize_inplace(dref: DRef, force_rebuild: Iterable[DRef] | bool = (), **kwargs: Any) -> RRef:
    """Realize an inplace-instantiated DRef and return its one chosen RRef."""
    r = inplace_registry()
    return realize1(closure_of(r, [dref], dref), force_rebuild=force_rebuild, **kwargs)


def realizeMany_inplace(
    dref: DRef, force_rebuild: Iterable[DRef] | bool = (), **kwargs: Any
) -> list[RRef]:
    """Realize an inplace-instantiated DRef; return every RRef its matcher chose."""
    r = inplace_registry()
    targets = find_drefs(dref)
    return realizeMany(closure_of(r, targets, dref), force_rebuild=force_rebuild, **kwargs)

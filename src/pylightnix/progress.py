"""Progress reporting hook of the core (the CLI extra renders it).

The core calls :func:`report` with :class:`ProgressEvent` records; whoever
wants them installs a callback with :func:`progress_hook` (for a block) or
:func:`set_progress_hook` (for the process). Without a callback, reporting
costs one context-variable lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pylightnix.types import DRef, RRef


@dataclass(frozen=True)
class ProgressEvent:
    """One progress record.

    Attributes:
        kind: ``"plan"``, ``"check"``, ``"reuse"``, ``"build"`` (a realizer
            starts, under the build lock), ``"running"`` (a build task started
            on a Dask worker: ``extra["worker"]``), ``"built"``, ``"plan-build"`` (dry
            run: would build), ``"fail"``, ``"done"`` (realize), ``"explain"``
            (``realize(explain=True)``: ``extra`` holds decision and reason),
            ``"download"`` (byte progress of a fetch), ``"transfer"`` (byte
            progress of a push or pull: ``name`` is the remote, ``extra`` holds
            ``direction`` and ``rate``) or ``"log"`` (a build starts writing its
            log: ``extra["path"]``, for showing its last line).
        dref: the derivation concerned, if any.
        name: its name.
        done: stages finished so far (realize) or bytes so far (download, transfer).
        total: stages in the closure or bytes expected (0 when unknown).
        elapsed: seconds since the operation began.
        rrefs: realizations chosen, for ``reuse``/``built``.
        extra: anything else worth showing (URL, reason).
    """

    kind: str
    dref: DRef | None = None
    name: str = ""
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    rrefs: tuple[RRef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


ProgressHook = Callable[[ProgressEvent], None]

_HOOK: ContextVar[ProgressHook | None] = ContextVar("pylightnix_progress", default=None)
_GLOBAL: list[ProgressHook | None] = [None]


def set_progress_hook(hook: ProgressHook | None) -> None:
    """Install ``hook`` for the whole process (``None`` removes it)."""
    _GLOBAL[0] = hook


@contextlib.contextmanager
def progress_hook(hook: ProgressHook | None) -> Iterator[None]:
    """Within the block, send progress events to ``hook``."""
    tok = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(tok)


def current_hook() -> ProgressHook | None:
    """The hook in force (block, then process), or ``None``."""
    h = _HOOK.get()
    return h if h is not None else _GLOBAL[0]


def report(event: ProgressEvent) -> None:
    """Send ``event`` to the hook in force, if any."""
    h = current_hook()
    if h is not None:
        h(event)


_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int) -> str:
    """A byte count for people (binary units).

    >>> human_size(0)
    '0 B'
    >>> human_size(1536)
    '1.5 KiB'
    >>> human_size(5 * 2**30)
    '5.0 GiB'
    """
    size = float(n)
    for unit in _SIZE_UNITS:
        if abs(size) < 1024 or unit == _SIZE_UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover

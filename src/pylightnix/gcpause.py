"""Python's cyclic garbage collector paused while the library walks large closures.

Instantiating or checking a closure of N stages keeps a few long-lived
objects per stage (its derivation, config, matcher and realizer). The cyclic
collector's full passes walk all of them again and again as the closure
grows, at a cost per stage that grows with N (9.3 µs of instantiate and 4.7
µs of a no-op realize per stage at 100,000 stages, 4.4 and 0.6 at 10,000:
bench/README.md). The library's own bookkeeping makes no reference cycles
worth collecting, so :func:`library_work` turns the collector off for such a
stretch and :func:`user_code` turns it back on around a realizer's build,
which may allocate as it likes. Reference counting frees everything else as
usual. A collector the caller had disabled stays disabled; nesting and
threads only ever leave it on where it would have been on.

At the end of the outermost block, every object still young (mostly what the
block allocated, kept as long as the closure) joins the oldest generation
(``gc.freeze()`` then ``gc.unfreeze()``: two list splices) instead of being
walked by the young collection the next allocation would start (2.3 µs per
stage of a no-op instantiate and realize at 10,000 stages). The next full
collection looks at them, and finds any cycle among them. Skipped while the
caller holds objects frozen (``gc.unfreeze()`` would release them).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_state = {"depth": 0, "was_enabled": False}


@contextlib.contextmanager
def library_work() -> Iterator[None]:
    """Within the block, the cyclic collector is off (if this call turned it off, it is
    turned on again at the end)."""
    with _lock:
        if _state["depth"] == 0:
            _state["was_enabled"] = gc.isenabled()
            gc.disable()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was_enabled"]:
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """Within a :func:`library_work` block, run user code (a build) with the collector as
    the caller had it."""
    with _lock:
        resume = _state["depth"] > 0 and bool(_state["was_enabled"]) and not gc.isenabled()
        if resume:
            gc.enable()
    try:
        yield
    finally:
        if resume:
            with _lock:
                if _state["depth"] > 0:
                    gc.disable()

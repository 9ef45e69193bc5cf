"""``diff``: the config difference of two refs or stages (no external ``diff`` needed).

It lives above the realize layer because a stage function must be
instantiated to learn its config; refs and configs are compared by
:func:`pylightnix.store.inspect.refdiff`.
"""

from __future__ import annotations

from typing import Any

from pylightnix.config import Config, config_dict
from pylightnix.errors import InstantiateError
from pylightnix.realize.registry import instantiate
from pylightnix.refs import is_dref
from pylightnix.store.inspect import ConfigDiff, config_diff, ref_config
from pylightnix.store.settings import StorageSettings


def _config_of(x: Any, S: StorageSettings | None) -> dict[str, Any]:
    if callable(x) and not isinstance(x, Config | dict):
        result, clo = instantiate(x, S=S)
        if not is_dref(result):
            raise InstantiateError(
                f"diff: stage {x!r} returned {result!r}; diff compares stages returning one DRef"
            )
        return config_dict(clo.index[result].config)
    return ref_config(x, S)


def diff(a: Any, b: Any, S: StorageSettings | None = None) -> ConfigDiff:
    """Compare the configs of two DRefs, RRefs, configs or stage functions.

    Args:
        a: the first (old) one.
        b: the second (new) one.
        S: the store (stages are instantiated into it; refs are read from it).

    Returns:
        A :class:`ConfigDiff` (``str()`` of it reads like a unified diff).

    Raises:
        RefError: a ref is malformed or not stored.
        InstantiateError: a stage does not return a single DRef.
    """
    return config_diff(_config_of(a, S), _config_of(b, S))

"""Overrides for sweeps: stage arguments checked up front, config keys set by stage name.

Two tools behind ``pylightnix realize/explain STAGE --arg K=V --set S.K=V``:

* :func:`check_stage_args` checks keyword arguments against a stage
  function's parameters before anything runs: unknown names, values of
  another JSON kind than the default (or a simple annotation) and values
  given for a parameter whose default is a stage (a dependency) are refused.
* :func:`config_overrides` sets config keys of the derivations a stage
  registers, by stage name: ``data.n=300`` changes ``n`` in every derivation
  named ``data`` (nested stages included: their DRefs, and so their users',
  change as if the code said so); ``opt.lr=0.1`` sets a nested key.
  Without a stage name (``lr=0.3``) the key is looked up in every
  derivation; it must belong to stages of one name. Each override must
  apply somewhere, to an existing key, with a value of that key's JSON kind;
  a dependency (a DRef) cannot be overridden with a value.

``instantiate_with_overrides`` first instantiates into a registry that
writes nothing, so a bad override leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import Config, config_dict, config_name, is_refpath, mkconfig
from pylightnix.errors import OptionError
from pylightnix.refs import is_dref

_KINDS = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
          list: "a list", dict: "an object", type(None): "null"}  # fmt: skip
_ANNOTATIONS = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def json_kind(v: Any) -> str:
    """The JSON kind of a value, for messages and comparisons.

    >>> json_kind(1), json_kind(0.5), json_kind(True), json_kind([1])
    ('a number', 'a number', 'a boolean', 'a list')
    """
    return _KINDS.get(type(v), type(v).__name__)


def _fits(expected: Any, value: Any) -> bool:
    if expected is None or value is None:
        return True
    if isinstance(expected, float) and type(value) is int:
        return True
    if type(expected) is int and type(value) is float:
        return value.is_integer()
    return json_kind(expected) == json_kind(value)


def _is_stage_default(v: Any) -> bool:
    """Whether a parameter default is a stage (a dependency), not a value."""
    return is_dref(v) or (callable(v) and not isinstance(v, type))


def _param_defaults(fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, str], bool]:
    """``(defaults, annotations, takes_any)`` of a stage's keyword parameters."""
    defaults = getattr(fn, "defaults", None)
    if isinstance(defaults, Mapping) and hasattr(fn, "config_params"):
        return dict(defaults), {}, False  # an @autostage: its config parameters
    sig = inspect.signature(fn)
    out: dict[str, Any] = {}
    notes: dict[str, str] = {}
    any_kw = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            any_kw = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) or p.name == "r":
            continue
        out[p.name] = None if p.default is p.empty else p.default
        if isinstance(p.annotation, str):
            notes[p.name] = p.annotation
        elif isinstance(p.annotation, type):
            notes[p.name] = p.annotation.__name__
    return out, notes, any_kw


def check_stage_args(fn: Callable[..., Any], kwargs: Mapping[str, Any], *, who: str) -> None:
    """Refuse arguments a stage function cannot take, before anything runs.

    Args:
        fn: the stage function (or an ``@autostage``).
        kwargs: the keyword arguments (JSON values).
        who: how messages name the stage (``pipeline.py:train``).

    Raises:
        OptionError: an unknown parameter, a value of another JSON kind than
            the parameter's default or annotation, or a value for a dependency.
    """
    defaults, notes, any_kw = _param_defaults(fn)
    names = ", ".join(defaults) or "none"
    for k, v in kwargs.items():
        if k not in defaults:
            if any_kw:
                continue
            raise OptionError(
                f"stage {who} has no parameter {k!r} (its parameters: {names})",
                option="arg",
                value=k,
            )
        d = defaults[k]
        if _is_stage_default(d):
            raise OptionError(
                f"parameter {k!r} of stage {who} is a dependency (a stage), not a value: "
                f"set that stage's own parameters with --set STAGE.KEY=VALUE",
                option="arg",
                value=k,
            )
        expected = d
        t = _ANNOTATIONS.get(notes.get(k, "").split("[", 1)[0].strip())
        if d is None and t is not None:
            expected = t() if t is not float else 0.0
        if not _fits(expected, v):
            raise OptionError(
                f"--arg {k}={json.dumps(v)}: parameter {k!r} of stage {who} takes "
                f"{json_kind(expected)} (default {json.dumps(d)}), got {json_kind(v)}",
                option="arg",
                value=k,
            )


@dataclass(frozen=True)
class Override:
    """One ``--set`` entry: ``stage`` (or ``None``), the key ``path`` and the ``value``."""

    stage: str | None
    path: tuple[str, ...]
    value: Any
    text: str


@dataclass
class _Use:
    overrides: tuple[Override, ...]
    names: set[str]
    applied: dict[str, set[str]] = field(default_factory=dict)


_ACTIVE: ContextVar[_Use | None] = ContextVar("pylightnix_overrides", default=None)


def parse_override(text: str, stage_names: set[str] | None = None) -> Override:
    """``STAGE.KEY=VALUE`` (or ``KEY=VALUE``) with VALUE parsed as JSON when it parses.

    >>> parse_override("data.n=300")
    Override(stage='data', path=('n',), value=300, text='data.n=300')
    >>> parse_override("lr=0.3")
    Override(stage=None, path=('lr',), value=0.3, text='lr=0.3')

    Raises:
        OptionError: not of that form.
    """
    k, eq, v = text.partition("=")
    parts = k.split(".")
    if not eq or not all(p.isidentifier() or p.replace("-", "_").isidentifier() for p in parts):
        raise OptionError(
            f"--set {text!r} is not STAGE.KEY=VALUE (or KEY=VALUE)", option="set", value=text
        )
    try:
        value = json.loads(v)
    except json.JSONDecodeError:
        value = v
    if len(parts) > 1:
        return Override(parts[0], tuple(parts[1:]), value, text)
    return Override(None, tuple(parts), value, text)


def _get(d: Any, path: Sequence[str]) -> tuple[bool, Any]:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return False, None
        d = d[p]
    return True, d


def _set(d: dict[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    out = dict(d)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _set(out[path[0]], path[1:], value)
    return out


def _applies(o: Override, name: str, cfg: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key path ``o`` sets in a config named ``name``, or ``None``."""
    if o.stage is not None and o.stage == name:
        return o.path
    full = (o.stage, *o.path) if o.stage is not None else o.path
    found, _ = _get(cfg, full)
    return tuple(x for x in full if x is not None) if found else None


def override_config(c: Config) -> Config:
    """``c`` with the active overrides applied (``c`` itself when none applies)."""
    use = _ACTIVE.get()
    if use is None:
        return c
    name = str(config_name(c))
    use.names.add(name)
    d = config_dict(c)
    changed = False
    for o in use.overrides:
        path = _applies(o, name, d)
        if path is None:
            continue
        found, old = _get(d, path)
        if not found:
            keys = ", ".join(k for k in d if k != "name")
            raise OptionError(
                f"--set {o.text}: stage '{name}' has no key {'.'.join(path)!r} "
                f"(its keys: {keys or 'none'})",
                option="set",
                value=o.text,
            )
        if is_dref(old) or is_refpath(old):
            raise OptionError(
                f"--set {o.text}: key {'.'.join(path)!r} of stage '{name}' is a dependency; "
                "set that stage's own keys instead (--set ITS_NAME.KEY=VALUE)",
                option="set",
                value=o.text,
            )
        if not _fits(old, o.value):
            raise OptionError(
                f"--set {o.text}: key {'.'.join(path)!r} of stage '{name}' is "
                f"{json_kind(old)} ({json.dumps(old)}), got {json_kind(o.value)}",
                option="set",
                value=o.text,
            )
        use.applied.setdefault(o.text, set()).add(name)
        d = _set(d, path, o.value)
        changed = True
    return mkconfig(d) if changed else c


@contextlib.contextmanager
def config_overrides(overrides: Sequence[Override]) -> Iterator[dict[str, set[str]]]:
    """Within the block, :func:`~pylightnix.realize.registry.mkdrv` applies ``overrides``.

    Yields:
        the stage names each override was applied to, filled as stages register.

    Raises:
        OptionError: on leaving the block, an override that applied nowhere, or
            an unprefixed key found in stages of several names (ambiguous).
    """
    use = _Use(tuple(overrides), set())
    tok = _ACTIVE.set(use)
    try:
        yield use.applied
    finally:
        _ACTIVE.reset(tok)
    for o in overrides:
        names = use.applied.get(o.text, set())
        if not names:
            raise OptionError(
                f"--set {o.text}: no stage of this closure has that key or name "
                f"(stage names: {', '.join(sorted(use.names)) or 'none'})",
                option="set",
                value=o.text,
            )
        if o.stage not in names and len(names) > 1:
            raise OptionError(
                f"--set {o.text} is ambiguous: stages {', '.join(sorted(names))} all have it; "
                f"name one, e.g. --set {sorted(names)[0]}.{o.text}",
                option="set",
                value=o.text,
            )

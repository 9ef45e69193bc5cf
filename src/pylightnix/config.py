"""Configs: validated plain-JSON dicts, canonical serialization, dependencies.

A config describes a stage. It must be plain JSON data (``dict`` with ``str``
keys, ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``); any
other value is refused with an error that names its key path. Its canonical
form (sorted keys, fixed separators, UTF-8) is what gets hashed, so key order
never changes a DRef.

>>> canonical_json({"b": 1, "a": [1.5, None]})
b'{"a":[1.5,null],"b":1}'
>>> config_hash(mkconfig({"b": 2, "a": 1})) == config_hash(mkconfig({"a": 1, "b": 2}))
True
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NewType

from pylightnix.errors import ConfigError
from pylightnix.refs import (
    HASH_LEN,
    MAX_NAME_LEN,
    is_dref,
    is_name,
    mkdref_of_digest,
    name_too_long,
    parse_name,
)
from pylightnix.types import JSON, DRef, HashPart, Name, RefPath

selfref = "<self>"
"""First element of a promise ``[selfref, "file"]``: a file this stage will produce."""

DEFAULT_NAME = Name("unnamed")

_SCALARS = (str, int, float, bool, type(None))
_HINTS: dict[type, str] = {
    tuple: "use a list instead of a tuple",
    set: "use a sorted list instead of a set",
    frozenset: "use a sorted list instead of a frozenset",
    bytes: "decode bytes to str (or store them as an artifact)",
    bytearray: "decode bytes to str (or store them as an artifact)",
}


MAX_DEPTH = 100
"""Deepest nesting of lists and dicts in a config.

Deeper data (or a dict that contains itself) would exhaust Python's
recursion limit in the JSON encoder and in ``copy.deepcopy``; real configs
nest a few levels.
"""

_BIG_INT = 10**600
"""Integers this large may exceed ``sys.get_int_max_str_digits()`` (at least 640 digits)."""


def _fmt_path(path: tuple[Any, ...]) -> str:
    text = "config" + "".join(f"[{p!r}]" for p in path)
    return text if len(text) <= 200 else text[:60] + " ... " + text[-120:]


class _TooDeepError(Exception):
    """Raised inside :func:`_copy` when nesting passes :data:`MAX_DEPTH` (``args[0]``: path)."""


def _cycle_path(root: Any, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key path where the walk along ``path`` first meets a container it passed through."""
    seen = {id(root)}
    v = root
    for i, k in enumerate(path):
        v = v[k]
        if type(v) in (dict, list):
            if id(v) in seen:
                return path[: i + 1]
            seen.add(id(v))
    return None


def check_json(value: Any, path: tuple[Any, ...] = ()) -> None:
    """Raise :class:`ConfigError` unless ``value`` is plain JSON data.

    >>> check_json({"a": (1, 2)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pylightnix.errors.ConfigError: config['a'] is a tuple, not JSON data: use a list ...
    """
    copy_json(value, path)


def copy_json(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """A deep copy of plain JSON data, validated on the way (one walk instead of two).

    >>> copy_json({"a": [1, {"b": None}]})
    {'a': [1, {'b': None}]}

    Raises:
        ConfigError: ``value`` holds something that is not plain JSON data
            (including a container holding itself, nesting deeper than
            :data:`MAX_DEPTH`, a lone surrogate in a string, an integer too
            long to print); the message names its key path.
    """
    try:
        return _copy(value, path)
    except _TooDeepError as e:
        deep: tuple[Any, ...] = e.args[0]
    cyc = _cycle_path(value, deep[len(path) :])
    if cyc is not None:
        where = (*path, *cyc)
        raise ConfigError(
            f"{_fmt_path(where)} contains itself (a cycle): JSON data must be a tree; "
            "copy the value instead of referring to it",
            key_path=where,
        )
    raise ConfigError(
        f"{_fmt_path(deep)} is nested more than {MAX_DEPTH} levels deep: "
        "flatten the config (e.g. store deep data as an artifact)",
        key_path=deep,
    )


def _copy(value: Any, path: tuple[Any, ...]) -> Any:
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_utf8(value, path, path)
        return value
    if t is dict:
        if len(path) > MAX_DEPTH:
            raise _TooDeepError(path)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise ConfigError(
                    f"{_fmt_path(path)} has a key {k!r} of type {type(k).__name__}: "
                    "config keys must be str",
                    key_path=(*path, k),
                )
            if not k.isascii():
                _check_utf8(k, path, (*path, k))
            out[k] = _copy(v, (*path, k))
        return out
    if t is list:
        if len(path) > MAX_DEPTH:
            raise _TooDeepError(path)
        return [_copy(v, (*path, i)) for i, v in enumerate(value)]
    if t is float:
        if not math.isfinite(value):
            raise ConfigError(
                f"{_fmt_path(path)} is {value!r}: NaN and Infinity are not JSON "
                "(use None or a string)",
                key_path=path,
            )
        return value
    if t is int:
        if (value >= _BIG_INT or value <= -_BIG_INT) and not _printable_int(value):
            raise ConfigError(
                f"{_fmt_path(path)} is an integer of about {int(value.bit_length() * 0.30103)} "
                "digits, more than Python prints (sys.get_int_max_str_digits()): "
                "store it as a string",
                key_path=path,
            )
        return value
    if t in _SCALARS:
        return value
    hint = _HINTS.get(t, "convert it to str, int, float, bool, None, list or dict")
    raise ConfigError(
        f"{_fmt_path(path)} is a {t.__name__}, not JSON data: {hint}",
        key_path=path,
    )


def _printable_int(value: int) -> bool:
    try:
        str(value)
    except ValueError:
        return False
    return True


def _check_utf8(s: str, path: tuple[Any, ...], key_path: tuple[Any, ...]) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        what = "a key" if key_path != path else "a string"
        raise ConfigError(
            f"{_fmt_path(path)} has {what} with the lone surrogate {s[e.start]!r} at "
            f"position {e.start}, which is not valid Unicode text (UTF-8 cannot encode it): "
            "decode the data properly or store it as bytes in an artifact",
            key_path=key_path,
        ) from None


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""One encoder for every call: ``json.dumps`` with options builds a new one each time."""


def canonical_json(value: JSON) -> bytes:
    """Canonical UTF-8 JSON bytes of already-checked data (sorted keys, no spaces)."""
    return _CANONICAL.encode(value).encode("utf-8")


def canonical_tree(value: JSON) -> bytes:
    """:func:`canonical_json` of data known to be a tree (no container inside itself),
    such as what :func:`copy_json` returns: the same bytes, about twice as fast.

    >>> canonical_tree({"b": 1, "a": [1.5, None]})
    b'{"a":[1.5,null],"b":1}'
    """
    return _encode_tree(value)


def _tree_encoder() -> Callable[[Any], bytes]:
    """The encoder of :func:`canonical_tree`.

    ``JSONEncoder.encode`` builds its C encoder anew on every call (about a
    microsecond, as much as encoding a small config); this one is built once.
    It keeps no state between calls (no record of the containers it is in,
    which only a cycle would need), so threads may share it. Where the C
    encoder is missing or answers otherwise, :func:`canonical_json` serves.
    """
    from json import encoder as std

    try:
        enc = std.c_make_encoder(  # type: ignore[attr-defined]
            None, _CANONICAL.default, std.encode_basestring, None, ":", ",", True, False, False
        )
        sample = {"b": [1.5, None, True, -(2**70)], "a": '\u00e9"\n', "": {}}
        if "".join(enc(sample, 0)) == _CANONICAL.encode(sample):
            return lambda value: "".join(enc(value, 0)).encode("utf-8")
    except TypeError:  # no C encoder, or another signature in some Python version
        pass
    return canonical_json


_encode_tree = _tree_encoder()


def short_hash(data: bytes) -> HashPart:
    """The ref hash part of ``data``: the first :data:`HASH_LEN` hex chars of sha256."""
    return HashPart(hashlib.sha256(data).hexdigest()[:HASH_LEN])


@dataclass(frozen=True)
class Config:
    """A validated config. Build one with :func:`mkconfig`; read it with :func:`config_dict`."""

    val: dict[str, JSON]
    _canon: bytes = field(repr=False, compare=False, default=b"")
    # The DRefs of config_deps when mkconfig found them on its walk (None: not known yet).
    _deps: tuple[DRef, ...] | None = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not self._canon:
            object.__setattr__(self, "_canon", canonical_json(self.val))


RConfig = NewType("RConfig", dict)  # type: ignore[type-arg]
"""A config dict whose self-refs ``[selfref, ...]`` are resolved to ``[dref, ...]``."""


def mkconfig(d: dict[str, Any]) -> Config:
    """Validate ``d`` and return it as a :class:`Config` (a private deep copy).

    Raises:
        ConfigError: ``d`` is not a dict of plain JSON data, or its ``name`` is invalid.
    """
    if type(d) is not dict:
        raise ConfigError(
            f"a config must be a dict, got {type(d).__name__} (wrap it: {{'value': ...}})",
            key_path=(),
        )
    heads: list[str] = []
    deps: tuple[DRef, ...] | None
    try:
        val = _fast_copy(d, 0, heads)
        deps = _dep_tuple(heads) if heads else ()
    except _NotPlainError:
        # The general walk: slower, and the one that says what is wrong and where.
        val = copy_json(d)
        deps = None
    if "name" in val:
        name = val["name"]
        if type(name) is str and len(name) > MAX_NAME_LEN:
            raise ConfigError(f"config['name']: {name_too_long(name)}", key_path=("name",))
        if not is_name(name):
            raise ConfigError(
                f"config['name'] is {d['name']!r}: names may use only letters, digits, '-' and '_'",
                key_path=("name",),
            )
    return Config(val, canonical_tree(val), deps)


def _dep_tuple(heads: list[str]) -> tuple[DRef, ...]:
    """The sorted unique DRefs among strings that start like one."""
    if len(heads) == 1:  # the usual case: one dependency, named once
        return (heads[0],) if is_dref(heads[0]) else ()  # type: ignore[return-value]
    return tuple(sorted({DRef(h) for h in heads if is_dref(h)}))


class _NotPlainError(Exception):
    """(internal) :func:`_fast_copy` met something only the general walk handles."""


def _fast_copy(value: Any, depth: int, heads: list[str]) -> Any:
    """:func:`copy_json` of a dict or list of the usual kinds of values, else
    :class:`_NotPlainError`.

    No key paths are built (the general walk makes them when it has an error to
    report), and it notes the strings that may be DRefs (``heads``, for
    :func:`config_deps`). It gives up on anything the general walk might refuse
    or treat otherwise: non-ASCII text, an integer near the printable limit, a
    float that is not finite, any other type, deep nesting. The loops over a
    dict and over a list are written out twice: a shared helper per value
    would cost a call per value, most of the time this walk takes.
    """
    if depth >= MAX_DEPTH:
        raise _NotPlainError
    if type(value) is dict:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                raise _NotPlainError
            t = type(v)
            if t is str:
                if not v.isascii():
                    raise _NotPlainError
                if v[:5] == "dref:":
                    heads.append(v)
            elif t is dict or t is list:
                out[k] = _fast_copy(v, depth + 1, heads)
                continue
            elif (
                (t is int and not -_BIG_INT < v < _BIG_INT)
                or (t is float and not _isfinite(v))
                or (t is not int and t is not float and t is not bool and v is not None)
            ):
                raise _NotPlainError
            out[k] = v
        return out
    lst: list[Any] = []
    for v in value:
        t = type(v)
        if t is str:
            if not v.isascii():
                raise _NotPlainError
            if v[:5] == "dref:":
                heads.append(v)
        elif t is dict or t is list:
            lst.append(_fast_copy(v, depth + 1, heads))
            continue
        elif (
            (t is int and not -_BIG_INT < v < _BIG_INT)
            or (t is float and not _isfinite(v))
            or (t is not int and t is not float and t is not bool and v is not None)
        ):
            raise _NotPlainError
        lst.append(v)
    return lst


_isfinite = math.isfinite


def config_dict(c: Config) -> dict[str, JSON]:
    """A fresh deep copy of the config's data (mutating it never changes ``c``)."""
    return copy.deepcopy(c.val)


def config_name(c: Config) -> Name:
    """The config's ``name`` field, or ``'unnamed'``."""
    n = c.val.get("name", DEFAULT_NAME)
    return parse_name(n)


def config_serialize(c: Config) -> bytes:
    """The canonical bytes of the config (what is hashed and stored)."""
    return c._canon


_CONFIG_TAG = b"pylightnix-config-v1\0"


def config_hash(c: Config) -> HashPart:
    """The DRef hash part of a config: hash of its canonical bytes."""
    return short_hash(_CONFIG_TAG + c._canon)


def config_dref(c: Config) -> DRef:
    """The DRef of a config: ``mkdref(config_hash(c), config_name(c))`` in one step.

    >>> c = mkconfig({"name": "x"})
    >>> config_dref(c) == f"dref:{config_hash(c)}-x"
    True

    Raises:
        RefError: the config's ``name`` is not a valid object name.
    """
    return mkdref_of_digest(config_hash(c), c.val.get("name", DEFAULT_NAME))


def config_deps(c: Config) -> list[DRef]:
    """DRefs the config mentions (directly or as RefPath heads), sorted, unique.

    >>> d = "dref:" + "a" * 32 + "-x"
    >>> config_deps(mkconfig({"src": [d, "f.txt"], "other": d, "s": "text"})) == [d]
    True
    """
    if c._deps is not None:
        return list(c._deps)
    out: set[str] = set()
    _scan(c.val, out)
    return sorted(DRef(x) for x in out)


def _scan(v: Any, out: set[str]) -> None:
    t = type(v)
    if t is str:
        if v.startswith("dref:") and is_dref(v):
            out.add(v)
    elif t is dict:
        for x in v.values():
            _scan(x, out)
    elif t is list:
        for x in v:
            _scan(x, out)


def config_promises(c: Config) -> list[tuple[tuple[Any, ...], list[str]]]:
    """The promises ``[selfref, *path]`` of a config with their key paths.

    >>> config_promises(mkconfig({"out": [selfref, "model.bin"]}))
    [(('out',), ['model.bin'])]
    """
    out: list[tuple[tuple[Any, ...], list[str]]] = []
    _scan_promises(c.val, (), out)
    return out


def _scan_promises(v: Any, path: tuple[Any, ...], out: list[Any]) -> None:
    if type(v) is list:
        if v and v[0] == selfref:
            rest = v[1:]
            if not rest or not all(type(p) is str and p for p in rest):
                raise ConfigError(
                    f"{_fmt_path(path)} is a promise {v!r} that names no file: "
                    "write it as [selfref, 'dir', 'file']",
                    key_path=path,
                )
            if any(p.startswith("/") or ".." in p.split("/") for p in rest):
                # A promise is a file inside the output: '..' or an absolute path
                # would let a file outside the output keep it.
                raise ConfigError(
                    f"{_fmt_path(path)} is a promise {v!r} that points outside the "
                    "output folder: use a relative path without '..'",
                    key_path=path,
                )
            out.append((path, list(rest)))
            return
        for i, x in enumerate(v):
            _scan_promises(x, (*path, i), out)
    elif type(v) is dict:
        for k, x in v.items():
            _scan_promises(x, (*path, k), out)


def resolve_selfrefs(c: Config, dref: DRef) -> RConfig:
    """The config's data with every ``[selfref, ...]`` turned into ``[dref, ...]``."""

    def go(v: Any) -> Any:
        t = type(v)
        if t is list:
            if v and v[0] == selfref:
                return [dref, *v[1:]]
            return [go(x) for x in v]
        if t is dict:
            return {k: go(x) for k, x in v.items()}
        return v

    return RConfig(go(c.val))


def is_refpath(v: Any) -> bool:
    """Tell whether ``v`` is a RefPath ``[DRef, "sub", "path"...]``."""
    return type(v) is list and len(v) >= 1 and is_dref(v[0]) and all(type(p) is str for p in v[1:])


def mkrefpath(dref: DRef, items: list[str] | None = None) -> RefPath:
    """Build a RefPath from a DRef and path components."""
    return [dref, *(items or [])]


def cfg_attrs(rc: dict[str, Any]) -> SimpleNamespace:
    """An attribute view of a config's top-level keys (``c.name``, ``c.src``)."""
    return SimpleNamespace(**rc)

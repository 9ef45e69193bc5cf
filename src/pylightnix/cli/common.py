"""Shared pieces of the command line: store selection, ref arguments, output helpers."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pylightnix.cli.app import CliState
from pylightnix.errors import RefError
from pylightnix.progress import human_size as human_size  # noqa: PLC0414  (re-exported)
from pylightnix.refs import is_rref
from pylightnix.store.layout import check_store
from pylightnix.store.query import dref2path_checked, path2dref, path2rref, rref2path
from pylightnix.store.settings import StorageSettings, fsS, mkSS
from pylightnix.types import DRef, RRef

if TYPE_CHECKING:  # rich loads only when a command prints a table (start-up, issue 15)
    from rich.console import Console
    from rich.table import Table

_F = TypeVar("_F", bound=Callable[..., Any])

_AGE_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])\Z")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def state() -> CliState:
    """The :class:`CliState` of the running command."""
    obj = click.get_current_context().find_object(CliState)
    if obj is None:  # a command run outside the group (only in library use)
        return CliState(None, False)
    return obj


def store_settings(*, must_exist: bool = True) -> StorageSettings:
    """The store the command works on.

    Raises:
        StoreError: ``must_exist`` and there is no store of this version there.
    """
    root = state().root
    S = mkSS(root) if root else fsS(None)
    if must_exist:
        check_store(S)
    return S


def parse_ref(text: str, S: StorageSettings) -> DRef | RRef:
    """A DRef or RRef given on the command line, checked to be in the store.

    Besides ``dref:...`` and ``rref:...``, a path inside the store (or a
    result link pointing there) names the realization or derivation it is in.

    Raises:
        RefError: malformed, unknown, or not in this store.
    """
    # rref2path and dref2path_checked parse the ref too: a malformed one is a RefError.
    if text.startswith("rref:"):
        rref2path(RRef(text), S)
        return RRef(text)
    if text.startswith("dref:"):
        dref2path_checked(DRef(text), S)
        return DRef(text)
    if os.path.lexists(text):
        real = os.path.realpath(text)
        r = path2rref(real, S)
        if r is not None:
            rref2path(r, S)
            return r
        d = path2dref(real, S)
        if d is not None:
            dref2path_checked(d, S)
            return d
        raise RefError(
            f"{text!r} is not inside the store at {S.storage!r}: give a dref:..., an "
            "rref:..., or a path into that store",
            ref=text,
        )
    raise RefError(
        f"{text!r} is neither a ref (dref:... or rref:...) nor an existing path: "
        "copy a ref from `pylightnix ls` or `pylightnix show`",
        ref=text,
    )


def parse_rref_arg(text: str, S: StorageSettings) -> RRef:
    """Like :func:`parse_ref`, but a realization is required."""
    r = parse_ref(text, S)
    if not is_rref(r):
        raise RefError(
            f"{text!r} is a derivation; this command needs a realization (rref:...): "
            f"list them with `pylightnix show {r}`",
            ref=text,
        )
    return RRef(r)


def parse_age(text: str) -> float:
    """Seconds in an age like ``90s``, ``15m``, ``2h``, ``3d``, ``1w``.

    >>> parse_age("2h")
    7200.0
    >>> parse_age("1.5d")
    129600.0

    Raises:
        click.BadParameter: not of that form (a usage error, exit code 2).
    """
    m = _AGE_RE.match(text.strip())
    if m is None:
        raise click.BadParameter(
            f"{text!r} is not an age: use a number and a unit s/m/h/d/w, e.g. 2h or 3d"
        )
    return float(m.group(1)) * _AGE_UNITS[m.group(2)]


def fmt_time(t: float | None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM:SS`` (``-`` for none)."""
    if not t:
        return "-"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def newer_than(t: float | None, age: float | None) -> bool:
    """Whether ``t`` lies within the last ``age`` seconds (always true without ``age``)."""
    return age is None or (t is not None and t >= time.time() - age)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON with sorted keys (for scripts)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def emit_json_stream(items: Iterable[Any]) -> None:
    """Print a JSON list item by item as :func:`emit_json` would print it whole.

    Each record is printed as soon as it is made, so a listing of a large
    store starts at once and holds one record in memory at a time.

    >>> emit_json_stream(iter([{"b": 1, "a": [2]}]))
    [
      {
        "a": [
          2
        ],
        "b": 1
      }
    ]
    >>> emit_json_stream([])
    []
    """
    first = True
    out = sys.stdout  # not click.echo: it flushes each call, a write per record
    for item in items:
        text = _flat_record(item)
        if text is None:
            text = json.dumps(item, indent=2, sort_keys=True, default=str).replace("\n", "\n  ")
        out.write(f"{'[' if first else ','}\n  {text}")
        first = False
    out.write("[]\n" if first else "\n]\n")
    out.flush()


def _flat_record(item: Any) -> str | None:
    """``item`` as ``json.dumps(indent=2, sort_keys=True)`` prints it inside a list, for a
    dict of plain values (``None`` otherwise): the C encoder does the values, where the
    indenting encoder is pure Python.

    >>> print(_flat_record({"b": None, "a": 1.5}))
    {
        "a": 1.5,
        "b": null
      }
    >>> _flat_record({"a": [1]}) is None
    True
    """
    if type(item) is not dict or not item:
        return None
    if not all(type(v) in _PLAIN for v in item.values()) or not all(type(k) is str for k in item):
        return None
    lines = ",\n    ".join(f"{_quote(k)}: {_plain_json(item[k])}" for k in sorted(item))
    return f"{{\n    {lines}\n  }}"


_PLAIN = (str, int, float, bool, type(None))
_quote = json.encoder.encode_basestring_ascii  # what json.dumps does with a str


def _plain_json(v: str | float | bool | None) -> str:
    """``json.dumps(v)`` of a plain value, without the encoder's set-up per call.

    >>> [_plain_json(x) for x in ("a", 3, True, None, 0.1, float("inf"))]
    ['"a"', '3', 'true', 'null', '0.1', 'Infinity']
    """
    if type(v) is str:
        return _quote(v)
    if type(v) is int:
        return int.__repr__(v)
    if v is None:
        return "null"
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float and v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
        return float.__repr__(v)
    return json.dumps(v)


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); wide and plain when not a terminal."""
    from rich.console import Console

    f = sys.stderr if stderr else sys.stdout
    if f.isatty():
        return Console(file=f)
    return Console(file=f, width=250, no_color=True, highlight=False, soft_wrap=True)


def print_table(table: Table) -> None:
    """Print a rich table on stdout without the padding rich leaves at line ends."""
    c = console()
    with c.capture() as cap:
        c.print(table)
    text = "\n".join(line.rstrip() for line in cap.get().splitlines())
    c.file.write(text + "\n")
    c.file.flush()


def remote_option(f: _F) -> _F:
    """The ``--option KEY=VALUE`` option of commands that open a remote."""
    return click.option(
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A storage option of the remote for fsspec (e.g. endpoint_url=...); repeatable.",
    )(f)


def remote_options(options: tuple[str, ...]) -> dict[str, Any]:
    """Storage options of a remote from ``--option KEY=VALUE`` (a JSON value, else text).

    >>> remote_options(("endpoint_url=http://127.0.0.1:9000", "anon=true"))
    {'endpoint_url': 'http://127.0.0.1:9000', 'anon': True}
    """
    out: dict[str, Any] = {}
    for o in options:
        k, sep, v = o.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{o!r}: expected KEY=VALUE", param_hint="--option")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out

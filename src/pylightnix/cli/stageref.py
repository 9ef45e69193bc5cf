"""Stage references on the command line: ``module:function`` or ``path/file.py:function``."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from pylightnix.errors import InstantiateError, PylightnixError
from pylightnix.realize.executors import BY_VALUE
from pylightnix.realize.overrides import check_stage_args, config_overrides, parse_override
from pylightnix.realize.registry import Closure, Registry, instantiate
from pylightnix.store.settings import StorageSettings


def load_stage(text: str) -> Callable[..., Any]:
    """The stage function a reference names.

    A module is imported with the current folder on ``sys.path``; a file is
    loaded as a module of its own.

    Raises:
        click.BadParameter: malformed, or the module/file/function is missing.
    """
    mod_part, sep, fn_name = text.rpartition(":")
    if not sep or not mod_part or not fn_name.isidentifier():
        raise click.BadParameter(
            f"{text!r} is not a stage reference: use module:function or path/to/file.py:function",
            param_hint="STAGE",
        )
    if mod_part.endswith(".py") or os.sep in mod_part:
        path = os.path.abspath(mod_part)
        if not os.path.isfile(path):
            raise click.BadParameter(f"no such file: {mod_part!r}", param_hint="STAGE")
        name = "_pylightnix_stage_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - .py files always have one
            raise click.BadParameter(f"cannot load {mod_part!r} as Python", param_hint="STAGE")
        mod = importlib.util.module_from_spec(spec)
        # Registered before running, so that pickling its functions (jobs, executors) works;
        # workers of another machine cannot import it by name: its code crosses by value.
        setattr(mod, BY_VALUE, True)
        sys.modules[name] = mod
        sys.path.insert(0, os.path.dirname(path))
        spec.loader.exec_module(mod)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            mod = importlib.import_module(mod_part)
        except ModuleNotFoundError as e:
            raise click.BadParameter(
                f"cannot import {mod_part!r}: {e}", param_hint="STAGE"
            ) from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise click.BadParameter(f"{mod_part!r} has no function {fn_name!r}", param_hint="STAGE")
    return fn  # type: ignore[no-any-return]


def parse_args(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as keyword arguments; values are JSON when they parse, else text.

    >>> parse_args(["lr=0.1", "name=big", "layers=[1, 2]"])
    {'lr': 0.1, 'name': 'big', 'layers': [1, 2]}
    """
    out: dict[str, Any] = {}
    for it in items:
        k, eq, v = it.partition("=")
        if not eq or not k.isidentifier():
            raise click.BadParameter(f"{it!r} is not KEY=VALUE", param_hint="--arg")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def instantiate_ref(
    text: str, args: Sequence[str], S: StorageSettings, sets: Sequence[str] = ()
) -> tuple[Any, Closure]:
    """Load the stage ``text`` and instantiate it with ``--arg`` values and ``--set``
    overrides into ``S``.

    ``--arg`` values are checked against the stage's parameters first, and
    ``--set`` overrides in a first pass that writes nothing
    (:mod:`pylightnix.realize.overrides`): a bad value leaves the store as it was.

    Raises:
        OptionError: a bad ``--arg`` or ``--set``.
        InstantiateError: the stage function raised something other than a
            pylightnix error.
    """
    fn, kw = load_stage(text), parse_args(args)
    check_stage_args(fn, kw, who=text)
    overrides = [parse_override(x) for x in sets]
    try:
        if overrides:
            probe = Registry(S)
            probe.write = False
            with config_overrides(overrides):
                instantiate(fn, r=probe, **kw)
        with config_overrides(overrides):
            result, clo = instantiate(fn, S=S, **kw)  # a plain pair, also for a 0.2.x stage(m)
        return result, clo
    except PylightnixError:
        raise
    except Exception as e:
        raise InstantiateError(
            f"stage {text} raised {type(e).__name__}: {e} (check its --arg values)"
        ) from e


stage_argument = click.argument("stage", metavar="STAGE")
arg_option = click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument for the stage function (VALUE parsed as JSON if possible), "
    "checked against its parameters before anything runs.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="STAGE.KEY=VALUE",
    help="Set a config key of every stage named STAGE, nested stages too (KEY=VALUE: "
    "the one stage name having KEY); VALUE parsed as JSON if possible.",
)

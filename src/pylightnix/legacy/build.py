"""The original's Build helpers that this engine spells differently (``pylightnix.build``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import is_refpath
from pylightnix.errors import ReplError
from pylightnix.realize.build import Build, build_path, build_tmpdir
from pylightnix.repl import ReplSession, _paused, repl_cancel
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Path


@dataclass(frozen=True)
class BuildArgs:
    """What the original's ``Build(ba)`` was made from (informational here)."""

    S: StorageSettings
    dref: DRef
    context: Context
    starttime: str | None = None
    stoptime: str | None = None
    iarg: Mapping[str, Any] = field(default_factory=dict)
    rarg: Mapping[str, Any] = field(default_factory=dict)


def mkbuildargs(
    S: StorageSettings,
    dref: DRef,
    context: Context,
    starttime: str | None = None,
    stoptime: str | None = None,
    iarg: Mapping[str, Any] | None = None,
    rarg: Mapping[str, Any] | None = None,
) -> BuildArgs:
    """A :class:`BuildArgs` record."""
    return BuildArgs(S, dref, context, starttime, stoptime, dict(iarg or {}), dict(rarg or {}))


def build_markstart(b: Build, nouts: int = 1) -> list[Path]:
    """Give the build ``nouts`` fresh empty output folders (replacing the current ones)."""
    if type(nouts) is not int or nouts < 1:
        raise ReplError(f"build_markstart(nouts={nouts!r}): nouts must be a positive int")
    tmp = build_tmpdir(b.S)
    b.outpaths = [Path(mkdtemp_in(tmp, f"out{i}")) for i in range(nouts)]
    return list(b.outpaths)


def build_setoutpaths(b: Build, nouts: int) -> list[Path]:
    """The 0.2.x spelling of :func:`build_markstart`."""
    return build_markstart(b, nouts)


def build_markstop(b: Build, buildstop: str | None = None) -> None:
    """Nothing to do: the engine records the stop time when it stores the outputs."""


def build_markstop_noexcept(b: Build) -> None:
    """Nothing to do (see :func:`build_markstop`)."""


def build_environ(b: Build, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) plus every config key as ``str(value)``,
    RefPaths resolved to system paths."""
    out = dict(os.environ if env is None else env)
    for k, v in b.config.items():
        if is_refpath(v) and v[0] != b.dref:
            out[k] = str(build_path(b, v))
        else:
            out[k] = str(v)
    return out


def repl_buildargs(rh: ReplSession | None = None) -> BuildArgs:
    """The :class:`BuildArgs` of the derivation the REPL session is paused at."""
    s, drv, ctx = _paused(rh)
    return mkbuildargs(s.closure.S, drv.dref, ctx, None, None, {}, {})


def repl_cancelBuild(b: Build, rh: ReplSession | None = None) -> None:
    """Remove the build's output folders and cancel the REPL session."""
    for p in b.outpaths:
        remove_tree(p)
    repl_cancel(rh)

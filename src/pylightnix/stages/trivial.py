"""Small built-in stages and stage transformers of the seed.

* :func:`mknode` / :func:`mkfile`: a realization made of given file contents;
  the contents are part of the config, so different contents give different
  DRefs;
* :func:`redefine`: the same stage with its config, matcher or realizer
  changed;
* :func:`realized`: the same stage, refusing to build (it must already be in
  the store).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pylightnix.config import config_dict
from pylightnix.errors import ConfigError, InstantiateError, NotRealizedError
from pylightnix.realize.build import Build, build_cattrs, build_outpath, build_wrapper
from pylightnix.realize.matchers import match_only
from pylightnix.realize.registry import (
    Registry,
    call_stage,
    current_registry,
    get_current_registry,
    mkdrv,
    registry_first,
)
from pylightnix.refs import is_dref
from pylightnix.store.layout import RESERVED
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Matcher, Path, Realizer
from pylightnix.unpack import member_target


def _artifact_value(fname: str, v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray):
        return {"base64": base64.b64encode(bytes(v)).decode("ascii")}
    raise ConfigError(
        f"mknode: artifact {fname!r} is a {type(v).__name__}; give str or bytes",
        key_path=("artifacts", fname),
    )


def _check_artifact_name(fname: Any) -> str:
    try:
        rel = member_target(fname) if isinstance(fname, str) else ""
    except ValueError:
        rel = ""
    if not rel or rel != fname or rel.split("/")[0] == RESERVED:
        raise ConfigError(
            f"mknode: artifact name {fname!r} must be a relative path like 'dir/file.txt' "
            f"(no '..', no leading '/', not {RESERVED!r})",
            key_path=("artifacts", str(fname)),
        )
    return rel


@registry_first
def mknode(
    config: Mapping[str, Any],
    artifacts: Mapping[str, bytes | str] | None = None,
    *,
    name: str = "mknode",
    r: Registry | None = None,
) -> DRef:
    """Register a stage whose realization holds the given files.

    Args:
        config: config entries (its ``name`` wins over ``name=``).
        artifacts: ``{relative path: contents}``; ``str`` is written as UTF-8.
        name: the stage name when ``config`` has none.
        r: the registry (passed by ``instantiate``).

    Returns:
        The DRef (matched with ``match_only``: the build is deterministic).

    Raises:
        ConfigError: an artifact name is absolute, climbs with ``..`` or is
            reserved, or a content is neither ``str`` nor ``bytes``.
    """
    arts = {
        _check_artifact_name(k): _artifact_value(k, v) for k, v in sorted((artifacts or {}).items())
    }
    c: dict[str, Any] = {"name": name, **dict(config)}
    if arts:
        if "artifacts" in config:
            raise ConfigError(
                "mknode: config already has an 'artifacts' key; pass files as artifacts= only",
                key_path=("artifacts",),
            )
        c["artifacts"] = arts
    return mkdrv(c, match_only(), build_wrapper(_mknode_realize), r=r)


def _mknode_realize(b: Build) -> None:
    out = build_outpath(b)
    arts = getattr(build_cattrs(b), "artifacts", {}) or {}
    for rel, v in arts.items():
        path = os.path.join(out, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = base64.b64decode(v["base64"]) if isinstance(v, dict) else v.encode("utf-8")
        with open(path, "wb") as f:
            f.write(data)


@registry_first
def mkfile(
    name: str,
    contents: bytes | str,
    filename: str | None = None,
    *,
    r: Registry | None = None,
) -> DRef:
    """Register a stage holding one file (``filename``, default: ``name``).

    Returns:
        The DRef.
    """
    return mknode({"name": name}, {filename or name: contents}, r=r)


def _registry(r: Registry | None, who: str) -> Registry:
    reg = r if r is not None else get_current_registry()
    if reg is None:
        raise InstantiateError(
            f"{who} was called outside instantiate(): run it with instantiate(stage, ...) "
            "or instantiate_inplace(stage, ...)"
        )
    return reg


def _single_dref(result: Any, stage: Any, who: str) -> DRef:
    if not is_dref(result):
        raise InstantiateError(
            f"{who} needs a stage that returns one DRef; {stage!r} returned {result!r}"
        )
    return DRef(result)


@dataclass(frozen=True)
class Redefined:
    """A stage with its final derivation's config, matcher or realizer replaced (picklable)."""

    stage: Callable[..., Any]
    new_config: Callable[[dict[str, Any]], Any] | None = None
    new_matcher: Matcher | None = None
    new_realizer: Realizer | None = None

    def __call__(self, *args: Any, r: Registry | None = None, **kwargs: Any) -> DRef:
        reg = _registry(r, "a redefined stage")
        # The original stage registers into a scratch copy of the registry, so the
        # caller's registry only ever sees the redefined target.
        scratch = Registry(reg.S)
        scratch.builders = dict(reg.builders)
        scratch.in_instantiate = True
        with current_registry(scratch):
            res = call_stage(self.stage, scratch, *args, **kwargs)
            old = _single_dref(res, self.stage, "redefine")
        for d, drv in scratch.builders.items():
            if d != old and d not in reg.builders:
                mkdrv(drv.config, drv.matcher, drv.realizer, r=reg)
        drv = scratch.builders[old]
        cfg = config_dict(drv.config)
        if self.new_config is not None:
            res = self.new_config(cfg)
            if res is not None:
                cfg = res
        return mkdrv(
            cfg,
            self.new_matcher if self.new_matcher is not None else drv.matcher,
            self.new_realizer if self.new_realizer is not None else drv.realizer,
            r=reg,
        )


def redefine(
    stage: Callable[..., Any],
    new_config: Callable[[dict[str, Any]], Any] | None = None,
    new_matcher: Matcher | None = None,
    new_realizer: Realizer | None = None,
) -> Redefined:
    """The stage ``stage`` with its final derivation changed (the seed's ``redefine``).

    Args:
        stage: a stage function returning one DRef.
        new_config: edits the config dict in place (or returns a new dict).
        new_matcher: replaces the matcher.
        new_realizer: replaces the realizer.

    Returns:
        A new stage function (picklable when its parts are). Instantiating it
        also stores the original final derivation's config (unused, like any
        instantiated but unrealized derivation; GC removes it).
    """
    return Redefined(stage, new_config, new_matcher, new_realizer)


@dataclass(frozen=True)
class NeverBuild:
    """A realizer that refuses to run: the derivation must already be realized."""

    dref: DRef

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        raise NotRealizedError(
            f"{dref} is not realized in this context, and realized(stage) forbids building "
            "it: realize the plain stage first (or drop realized())",
            dref=dref,
        )


@dataclass(frozen=True)
class Realized:
    """A stage whose final derivation must already be realized (see :func:`realized`)."""

    stage: Callable[..., Any]

    def __call__(self, *args: Any, r: Registry | None = None, **kwargs: Any) -> DRef:
        reg = _registry(r, "realized(stage)")
        with current_registry(reg):
            d = _single_dref(call_stage(self.stage, reg, *args, **kwargs), self.stage, "realized")
        drv = reg.builders[d]
        return mkdrv(drv.config, drv.matcher, NeverBuild(d), r=reg)


def realized(stage: Callable[..., Any]) -> Realized:
    """The stage ``stage``, failing clearly if realizing it would need a build.

    Its dependencies are realized as usual; its own realizer is replaced by
    one raising :class:`NotRealizedError` (chained in the ``BuildError``).
    """
    return Realized(stage)

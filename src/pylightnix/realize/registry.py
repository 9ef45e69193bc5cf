"""Instantiation: stages register derivations in a :class:`Registry`.

``instantiate`` runs a stage function, which calls :func:`mkdrv` for every
derivation it defines. Each config is validated and hashed into a DRef and
written to the store (atomically, once). The result is a :class:`Closure`:
the targets plus every derivation they need, in dependency order.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from pylightnix.config import (
    Config,
    config_deps,
    config_dref,
    config_promises,
    config_serialize,
    mkconfig,
    selfref,
)
from pylightnix.errors import InstantiateError, RefError
from pylightnix.gcpause import library_work
from pylightnix.realize.overrides import override_config
from pylightnix.refs import is_dref
from pylightnix.store.insert import store_derivation
from pylightnix.store.layout import check_store
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.temproots import add_temproots
from pylightnix.types import DRef, Matcher, Realizer


@dataclass
class Derivation:
    """A registered derivation: its config, matcher, realizer and direct deps."""

    dref: DRef
    config: Config
    matcher: Matcher
    realizer: Realizer
    deps: tuple[DRef, ...]
    promises: tuple[tuple[str, ...], ...] = ()


class Registry:
    """The derivations registered by stage functions (a build plan in the making).

    Attributes:
        S: the store derivations are written to.
        builders: registered derivations by DRef, in registration (= dependency) order.
    """

    def __init__(self, S: StorageSettings | None = None) -> None:
        self.S: StorageSettings = fsS(S)
        self.builders: dict[DRef, Derivation] = {}
        self.in_instantiate: bool = False
        # False: a probe that registers without storing (checking --set before a real run).
        self.write: bool = True

    def __repr__(self) -> str:
        return f"Registry(S={self.S.storage!r}, derivations={len(self.builders)})"


@dataclass(frozen=True)
class Closure:
    """An instantiated build plan.

    Attributes:
        result: what the stage function returned (DRefs, or containers of them).
        targets: the DRefs found in ``result``.
        derivations: every derivation the targets need, dependencies first.
        S: the store.
    """

    result: Any
    targets: tuple[DRef, ...]
    derivations: tuple[Derivation, ...]
    S: StorageSettings
    index: Mapping[DRef, Derivation] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dref(self) -> DRef:
        """The single target (the original 0.2.x ``Closure.dref``).

        Raises:
            RefError: the closure has several targets.
        """
        if len(self.targets) != 1:
            raise RefError(
                f"the closure has {len(self.targets)} targets, so no single .dref: use .targets",
                ref=None,
            )
        return self.targets[0]


class Instantiated(tuple[Any, Closure]):
    """What :func:`instantiate` returns: the pair ``(result, closure)``.

    It also answers the original 0.2.x Closure's ``.dref`` and ``.derivations``;
    ``seed_api`` marks a 0.2.x stage ``stage(m)``, whose ``realize`` answered
    one RRef (see :func:`pylightnix.realize`).
    """

    seed_api: bool

    def __new__(cls, result: Any, closure: Closure, seed_api: bool = False) -> Instantiated:
        self = super().__new__(cls, (result, closure))
        self.seed_api = seed_api
        return self

    @property
    def dref(self) -> DRef:
        """The closure's single target."""
        return self[1].dref

    @property
    def derivations(self) -> tuple[Derivation, ...]:
        """The closure's derivations."""
        return self[1].derivations


_SELFREF_JSON = f'"{selfref}"'.encode()
"""How a promise's head appears in a canonical config (``selfref`` needs no escape)."""

_CURRENT: ContextVar[Registry | None] = ContextVar("pylightnix_registry", default=None)

_P = ParamSpec("_P")
_T = TypeVar("_T")


def registry_first(f: Callable[_P, _T]) -> Callable[_P, _T]:
    """Also accept the original's spelling ``f(r, *args)``: a leading Registry becomes ``r=``.

    The original (0.2.x ``stage(m, ...)``, 0.3 ``mknode(r, cfgdict, ...)``) passed
    the registry first; a Registry is never a valid first argument otherwise, so
    the two spellings cannot be confused.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], Registry):
            if kwargs.get("r") is not None:
                raise InstantiateError(
                    f"{f.__qualname__} got a registry both first and as r=: pass one of them"
                )
            kwargs["r"] = args[0]
            args = args[1:]
        return f(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def current_registry(r: Registry) -> Iterator[Registry]:
    """Within the block, :func:`mkdrv` without ``r=`` registers into ``r``."""
    tok = _CURRENT.set(r)
    try:
        yield r
    finally:
        _CURRENT.reset(tok)


def get_current_registry() -> Registry | None:
    """The registry set by the innermost :func:`current_registry`, if any."""
    return _CURRENT.get()


@registry_first
def mkdrv(
    config: Config | dict[str, Any],
    matcher: Matcher,
    realizer: Realizer,
    r: Registry | None = None,
) -> DRef:
    """Register a derivation and return its DRef.

    Args:
        config: a :class:`Config` (or a plain dict, validated here).
        matcher: picks among existing realizations (``match_latest()``...).
        realizer: builds new ones (``build_wrapper(f)``...).
        r: the registry; default: the one of the enclosing ``instantiate``.

    Raises:
        InstantiateError: no registry, or a dependency that is not registered.
        ConfigError: the config is not plain JSON data.
    """
    reg = r if r is not None else _CURRENT.get()
    if reg is None:
        raise InstantiateError(
            "mkdrv was called outside instantiate(): run the stage with "
            "instantiate(stage, ...) or instantiate_inplace(stage, ...), or pass r=Registry(S)"
        )
    c = override_config(config if isinstance(config, Config) else mkconfig(config))
    if not callable(matcher) or not callable(realizer):
        raise InstantiateError(
            f"mkdrv needs a callable matcher and realizer, got {matcher!r} and {realizer!r}"
        )
    dref = config_dref(c)
    canon = config_serialize(c)
    builders = reg.builders
    # The canonical JSON names every DRef and promise as such (no escapes in either).
    deps = tuple(config_deps(c)) if b'"dref:' in canon else ()
    for d in deps:
        if d not in builders:
            raise InstantiateError(
                f"config of {dref} mentions {d}, which is not registered in this registry: "
                "instantiate the dependency's stage inside the same instantiate() call "
                "(DRefs from another registry or a hand-written DRef cannot be built)",
                dref=dref,
                dep=d,
            )
    promises = tuple(tuple(p) for _, p in config_promises(c)) if _SELFREF_JSON in canon else ()
    if dref not in builders and reg.write:
        store_derivation(reg.S, dref, c)
    # A re-registration keeps its place and takes the new callables.
    builders[dref] = Derivation(dref, c, matcher, realizer, deps, promises)
    return dref


def iter_leaves(x: Any) -> Iterator[Any]:
    """Every leaf of nested lists, tuples and dict values, in order."""
    if isinstance(x, list | tuple):
        for y in x:
            yield from iter_leaves(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from iter_leaves(y)
    else:
        yield x


def find_drefs(x: Any) -> list[DRef]:
    """DRefs inside a stage result (a DRef, or lists/tuples/dicts of them), in order."""
    return list(dict.fromkeys(DRef(v) for v in iter_leaves(x) if is_dref(v)))


def closure_of(r: Registry, targets: list[DRef], result: Any = None) -> Closure:
    """The closure of ``targets`` over ``r``: targets and their deps, dependencies first.

    Raises:
        RefError: a target is not registered in ``r``.
    """
    b = r.builders
    seen: set[DRef] = set()
    stack: list[DRef] = []
    for t in targets:
        if t not in b:
            raise RefError(
                f"{t} is not registered in {r!r}: instantiate its stage first",
                ref=t,
            )
        stack.append(t)
    while stack:
        d = stack.pop()
        if d not in seen:
            seen.add(d)
            stack.extend(b[d].deps)
    # Registration order is a topological order: a dep is registered before its users.
    index = {k: v for k, v in b.items() if k in seen}
    return Closure(result, tuple(targets), tuple(index.values()), r.S, index)


def _accepts_r(stage: Callable[..., Any]) -> bool:
    import inspect  # lazily: inspect pulls in ast and tokenize (start-up, issue 15)

    try:
        sig = inspect.signature(stage)
    except (TypeError, ValueError):
        return False
    p = sig.parameters.get("r")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _takes_registry_first(stage: Callable[..., Any], nargs: int) -> bool:
    """A stage of the original's 0.2.x form ``stage(m: Manager, ...)`` called with
    ``nargs`` positional arguments, fewer than its positional parameters (so the
    arguments follow ``m``, as 0.2.x ``instantiate(stage, *args)`` passed them)."""
    try:
        params = list(inspect.signature(stage).parameters.values())
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    if not positional or positional[0] is not params[0] or len(positional) <= nargs:
        return False
    ann = params[0].annotation
    ann_name = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
    return params[0].name == "m" or ann_name in ("Manager", "Registry")


def _seed_stage(stage: Callable[..., Any], nargs: int, kwargs: Mapping[str, Any]) -> bool:
    """Whether :func:`call_stage` passes the registry first (a 0.2.x ``stage(m)``)."""
    return "r" not in kwargs and not _accepts_r(stage) and _takes_registry_first(stage, nargs)


def call_stage(stage: Callable[..., Any], r: Registry, *args: Any, **kwargs: Any) -> Any:
    """Call a stage function with the registry: as ``r=`` if it takes one, else
    first (the original's ``stage(m, ...)``), else through :func:`current_registry`."""
    if "r" not in kwargs and _accepts_r(stage):
        kwargs["r"] = r
    elif _seed_stage(stage, len(args), kwargs):
        args = (r, *args)
    return stage(*args, **kwargs)


def instantiate(
    stage: Callable[..., Any],
    *args: Any,
    r: Registry | None = None,
    S: StorageSettings | None = None,
    **kwargs: Any,
) -> Instantiated:
    """Run a stage function, register its derivations and return ``(result, closure)``.

    The stage receives ``r=`` if it has a parameter of that name; otherwise
    :func:`mkdrv` finds the registry through :func:`current_registry`.

    Raises:
        InstantiateError: the registry is already instantiating (recursion), or
            ``S`` contradicts the registry's store.
    """
    if r is None:
        r = Registry(S)
    elif S is not None and S != r.S:
        raise InstantiateError(
            f"instantiate got S={S.storage!r} and a registry of {r.S.storage!r}: pass one of them"
        )
    if r.in_instantiate:
        raise InstantiateError(
            f"instantiate() called recursively on {r!r}: call the inner stage function "
            "directly (it registers into the same registry)"
        )
    check_store(r.S)
    r.in_instantiate = True
    try:
        with current_registry(r), library_work():
            # The original's instantiate(dref, r=r): DRefs already registered in r.
            result = call_stage(stage, r, *args, **kwargs) if callable(stage) else stage
    finally:
        r.in_instantiate = False
    # Every derivation of the registry becomes a temporary root in one batch.
    # Not checked (a stat each): one a collection removed just before is
    # written again before it is built (step.build_in), and its realizations
    # went with it, so nothing is matched from it.
    add_temproots(r.S, r.builders)
    seed = callable(stage) and _seed_stage(stage, len(args), kwargs)
    return Instantiated(result, closure_of(r, find_drefs(result), result), seed)

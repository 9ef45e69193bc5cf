"""The original's reference, context, config and storage helpers, on this engine.

Each function here is a thin spelling of something the engine already does
(see the rename table in ``docs/migrating.md``); none keeps state of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Generic, TypeAlias, TypeVar

from pylightnix.config import (
    Config,
    cfg_attrs,
    check_json,
    config_dict,
    config_promises,
    config_serialize,
    is_refpath,
    mkconfig,
    resolve_selfrefs,
    selfref,
)
from pylightnix.errors import (
    ConfigError,
    InstantiateError,
    PromiseError,
    RefError,
)
from pylightnix.hashing import context_json
from pylightnix.legacy.utils import scan_refs
from pylightnix.realize.registry import (
    _CURRENT,
    Closure,
    Registry,
    closure_of,
    find_drefs,
    get_current_registry,
    instantiate,
)
from pylightnix.refs import (
    HASH_LEN,
    is_dref,
    is_hashpart,
    is_rref,
    parse_dref,
    parse_name,
    parse_rref,
    rref2dref,
)
from pylightnix.store.insert import store_derivation, store_realization
from pylightnix.store.layout import CONFIG_FILE, RESERVED, check_store, dref2path
from pylightnix.store.links import timestring
from pylightnix.store.query import (
    drefcfg,
    drefcfg_,
    rref2path,
    rrefctx,
    rrefmeta,
)
from pylightnix.store.settings import (
    STORE_VERSION,
    StorageSettings,
    fsS,
    set_default_storage,
)
from pylightnix.types import Context, DRef, HashPart, Name, Path, RefPath, RRef

PYLIGHTNIX_NAMEPAT = "[a-zA-Z0-9_-]"
"""The characters of a derivation name (the original's pattern)."""

# --- references ------------------------------------------------------------------


def isdref(x: Any) -> bool:
    """Tell whether ``x`` is a well-formed DRef (exact, not the original's length test)."""
    return is_dref(x)


def isrref(x: Any) -> bool:
    """Tell whether ``x`` is a well-formed RRef."""
    return is_rref(x)


def isrefpath(p: Any) -> bool:
    """Tell whether ``p`` is a RefPath ``[dref, 'sub', 'path']``."""
    return is_refpath(p)


def isselfpath(p: Any) -> bool:
    """Tell whether ``p`` is a self-reference ``[selfref, 'file']`` (a promise)."""
    return type(p) is list and len(p) >= 1 and p[0] == selfref


def isselftag(x: Any) -> bool:
    """Tell whether ``x`` is the self-reference tag itself (0.2.x ``ispromise``/``isclaim``)."""
    return bool(x == selfref)


def isclosure(x: Any) -> bool:
    """Tell whether ``x`` is a :class:`Closure`."""
    return isinstance(x, Closure)


def undref(d: DRef) -> tuple[HashPart, Name]:
    """``(hash part, name)`` of a DRef."""
    return parse_dref(d)


def unrref(r: RRef) -> tuple[HashPart, HashPart, Name]:
    """``(realization hash, derivation hash, name)`` of an RRef."""
    return parse_rref(r)


def trimhash(h: str) -> HashPart:
    """The ref hash part of a full hex hash (its first 32 characters).

    Raises:
        RefError: ``h`` is not a hex string of at least 32 characters.
    """
    t = h[:HASH_LEN] if isinstance(h, str) else h
    if not is_hashpart(t):
        raise RefError(
            f"trimhash({h!r}): expected a hex hash of at least {HASH_LEN} characters", ref=None
        )
    return HashPart(t)


def mkname(s: str) -> Name:
    """A validated derivation name."""
    return parse_name(s)


# --- contexts --------------------------------------------------------------------


def mkcontext() -> Context:
    """An empty context."""
    return {}


def _norm(ctx: Mapping[DRef, Iterable[RRef] | None]) -> dict[DRef, list[RRef]]:
    return {DRef(k): sorted(v or ()) for k, v in ctx.items()}


def context_eq(a: Context, b: Context) -> bool:
    """Tell whether two contexts choose the same realizations (order ignored)."""
    return _norm(a) == _norm(b)


def context_add(ctx: Context, dref: DRef, rrefs: list[RRef]) -> Context:
    """A new context with ``dref`` mapped to ``rrefs`` (``ctx`` is not changed)."""
    out = dict(ctx)
    out[dref] = sorted(rrefs)
    return dict(sorted(out.items()))


def context_deref(ctx: Context, dref: DRef) -> list[RRef]:
    """The realizations a context chose for ``dref``.

    Raises:
        RefError: ``dref`` is not in the context.
    """
    if dref not in ctx:
        raise RefError(f"{dref} is not in the context (it has {sorted(ctx)})", ref=dref)
    return list(ctx[dref])


def context_derefpath(ctx: Context, refpath: RefPath, S: StorageSettings | None = None) -> Path:
    """The system path of a RefPath through the one realization the context chose."""
    rr = context_deref(ctx, DRef(refpath[0]))
    if len(rr) != 1:
        raise RefError(
            f"{refpath[0]} has {len(rr)} realizations in the context: a path needs one",
            ref=refpath[0],
        )
    return Path(os.path.join(rref2path(rr[0], S), *refpath[1:]))


def context_serialize(ctx: Context) -> str:
    """The context as canonical JSON text."""
    return context_json(ctx).decode("utf-8")


# --- configs ---------------------------------------------------------------------


def cfgcattrs(c: Config) -> SimpleNamespace:
    """The config's top-level keys as attributes."""
    return cfg_attrs(config_dict(c))


def cfgserialize(c: Config) -> str:
    """The config as canonical JSON text (what is hashed)."""
    return config_serialize(c).decode("utf-8")


def cfgsp(c: Config) -> list[tuple[str, RefPath]]:
    """The config's self-references: ``(key path joined with '.', [selfref, ...])``."""
    return [(".".join(map(str, kp)), [selfref, *p]) for kp, p in config_promises(c)]


def config_substitutePromises(c: Config, dref: DRef) -> dict[str, Any]:
    """The config with its promises (self-refs) resolved to ``dref``."""
    return dict(resolve_selfrefs(c, dref))


# --- the original's Output wrapper -------------------------------------------------


_REF = TypeVar("_REF")


@dataclass(frozen=True)
class Output(Generic[_REF]):
    """A list of outputs (RRefs or paths) as the original's Output-typed callbacks see
    them (``Output[RRef]``, ``Output[Path]``)."""

    val: list[_REF]


def _vals(o: Any) -> list[Any]:
    """The outputs of an Output, or of a plain list (``b.outpaths``)."""
    return list(o.val) if isinstance(o, Output) else list(o)


@dataclass(frozen=True)
class OutputMatcher:
    """A matcher from the original's ``(S, Output[RRef]) -> Output[RRef] | None`` (picklable)."""

    f: Any

    def __call__(self, S: StorageSettings, rrefs: list[RRef]) -> list[RRef] | None:
        res = self.f(S, Output(list(rrefs)))
        return None if res is None else _vals(res)


@dataclass(frozen=True)
class OutputRealizer:
    """A realizer from the original's ``(S, dref, ctx, rarg) -> Output[Path]`` (picklable)."""

    f: Any

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        # The engine checks the promises right after (PromiseError with .failed).
        return [Path(p) for p in _vals(self.f(S, dref, context, realize_args))]


MatcherO: TypeAlias = Callable[[StorageSettings, Output[RRef]], "Output[RRef] | None"]
"""The original's Output-typed matcher (adapt it with :func:`output_matcher`)."""

RealizerO: TypeAlias = Callable[[StorageSettings, DRef, Context, Mapping[str, Any]], Output[Path]]
"""The original's Output-typed realizer (adapt it with :func:`output_realizer`)."""

Stage: TypeAlias = Callable[..., Any]
"""A stage function (registers derivations, returns DRefs or containers of them)."""


def output_matcher(f: Any) -> OutputMatcher:
    """Turn an Output-typed matcher into a matcher of this engine."""
    return OutputMatcher(f)


def output_realizer(f: Any) -> OutputRealizer:
    """Turn an Output-typed realizer into a realizer of this engine (whose promise check
    raises :class:`PromiseError` with the original's ``.failed``)."""
    return OutputRealizer(f)


def output_validate(dref: DRef, o: Any, S: StorageSettings | None = None) -> list[Path]:
    """Check that every output folder holds the files the config of ``dref`` promises.

    Raises:
        PromiseError: a promised file is missing (lists each as (folder, path)).
    """
    c = drefcfg_(dref, S)
    paths = _vals(o)
    failed = [
        (p, [selfref, *kp_path])
        for p in paths
        for _, kp_path in config_promises(c)
        if not os.path.lexists(os.path.join(p, *kp_path))
    ]
    if failed:
        missing = [os.path.join(p, *sp[1:]) for p, sp in failed]
        raise PromiseError(
            f"{dref}: the build did not produce promised files {missing}",
            dref=dref,
            failed=failed,
            missing=missing,
        )
    return [Path(p) for p in paths]


# --- registries and storage ---------------------------------------------------------


def mkregistry(S: StorageSettings | None = None) -> Registry:
    """A new registry on ``S`` (default: the default store)."""
    return Registry(S)


def tlregistry(r: Registry | None = None) -> Registry | None:
    """``r``, or the registry of the enclosing ``current_registry`` block."""
    return r if r is not None else get_current_registry()


def setregistry(r: Registry) -> Registry:
    """Make ``r`` the current registry from now on in this context (no block)."""
    _CURRENT.set(r)
    return r


def tlstorage(S: StorageSettings | None = None) -> StorageSettings:
    """``S``, or the default store's settings."""
    return fsS(S)


def setstorage(S: StorageSettings | None) -> StorageSettings | None:
    """Make ``S`` the process's default store (``None``: back to the environment)."""
    set_default_storage(S)
    return S


def storagename() -> str:
    """The name of the store folder under the root."""
    return STORE_VERSION


def reserved(folder: str, name: str) -> Path:
    """The path of the reserved file ``name`` of a realization folder."""
    return Path(os.path.join(folder, RESERVED, name))


def mkclosure(result: Any, r: Registry) -> Closure:
    """The closure of the DRefs in ``result`` over ``r``."""
    return closure_of(r, find_drefs(result), result)


def instantiate_(r: Registry, stage: Any, *args: Any, **kwargs: Any) -> tuple[Any, Closure]:
    """``instantiate(stage, *args, r=r, **kwargs)``."""
    return instantiate(stage, *args, r=r, **kwargs)


def mkdrv_(c: Config, S: StorageSettings | None = None) -> DRef:
    """Write a config into the store (without registering it); return its DRef."""
    from pylightnix.config import config_hash, config_name
    from pylightnix.refs import mkdref

    s = fsS(S)
    check_store(s)
    d = mkdref(config_hash(c), config_name(c))
    store_derivation(s, d, c)
    return d


def mkrealization(dref: DRef, ctx: Context, o: str, S: StorageSettings | None = None) -> RRef:
    """Move a finished output folder ``o`` into the store as a realization of ``dref``."""
    import time

    s = fsS(S)
    return store_realization(s, dref, drefcfg_(dref, s), ctx, o, build_start=time.time())


def drefcfgpath(dref: DRef, S: StorageSettings | None = None) -> Path:
    """The path of a derivation's ``config.json``."""
    return Path(os.path.join(dref2path(dref, fsS(S)), CONFIG_FILE))


def rrefpath2path(r: RRef, refpath: RefPath, S: StorageSettings | None = None) -> Path:
    """The system path of ``refpath`` resolved through realization ``r``'s context."""
    d = DRef(refpath[0])
    base = r if rref2dref(r) == d else None
    if base is None:
        return context_derefpath(rrefctx(r, S), refpath, S)
    return Path(os.path.join(rref2path(base, S), *refpath[1:]))


def rrefbstop(rref: RRef, S: StorageSettings | None = None) -> float:
    """Build stop time of a realization (seconds since the epoch)."""
    m = rrefmeta(rref, S)
    return float(m.get("build_stop", m.get("build_start", 0.0)))


def rrefbdelta(rref: RRef, S: StorageSettings | None = None) -> float:
    """How long the build of a realization took (seconds)."""
    m = rrefmeta(rref, S)
    return float(m.get("build_stop", 0.0)) - float(m.get("build_start", 0.0))


def store_buildtime(rref: RRef, S: StorageSettings | None = None) -> str:
    """The build start time of a realization in the original's time format."""
    from pylightnix.store.query import rrefbstart

    return timestring(rrefbstart(rref, S))


def store_config(ref: DRef | RRef, S: StorageSettings | None = None) -> dict[str, Any]:
    """The resolved config of a DRef or of an RRef's derivation."""
    return dict(drefcfg(rref2dref(RRef(ref)) if is_rref(ref) else DRef(ref), S))


def store_cattrs(ref: DRef | RRef, S: StorageSettings | None = None) -> SimpleNamespace:
    """The resolved config of a DRef or RRef as attributes."""
    return cfg_attrs(store_config(ref, S))


def store_deref(rref: RRef, dref: DRef, S: StorageSettings | None = None) -> RRef:
    """The one realization of ``dref`` that ``rref`` was built with."""
    rr = context_deref(rrefctx(rref, S), dref)
    if len(rr) != 1:
        raise RefError(f"{rref} was built with {len(rr)} realizations of {dref}", ref=dref)
    return rr[0]


def store_deref_(rref: RRef, dref: DRef, S: StorageSettings | None = None) -> list[RRef]:
    """The realizations of ``dref`` that ``rref`` was built with."""
    return context_deref(rrefctx(rref, S), dref)


# --- graphs ----------------------------------------------------------------------


def kahntsort(nodes: Iterable[Any], inbounds: Mapping[Any, Iterable[Any]]) -> list[Any] | None:
    """Nodes in topological order (each after the nodes it has inbound edges from),
    or ``None`` if the graph has a cycle (the original missed cycles)."""
    ns = list(dict.fromkeys(nodes))
    deps = {n: set(inbounds.get(n, ())) & set(ns) for n in ns}
    users: dict[Any, list[Any]] = {n: [] for n in ns}
    for n, ds in deps.items():
        for d in ds:
            users[d].append(n)
    ready = [n for n in ns if not deps[n]]
    out: list[Any] = []
    left = {n: len(ds) for n, ds in deps.items()}
    while ready:
        n = ready.pop(0)
        out.append(n)
        for u in users[n]:
            left[u] -= 1
            if left[u] == 0:
                ready.append(u)
    return out if len(out) == len(ns) else None


def dagroots(sorted_nodes: Iterable[Any], inbounds: Mapping[Any, Iterable[Any]]) -> set[Any]:
    """The nodes no other node has an inbound edge from (nothing depends on them)."""
    ns = list(sorted_nodes)
    used = {d for n in ns for d in inbounds.get(n, ())}
    return {n for n in ns if n not in used}


# --- validation (raising this package's errors, never assert) ----------------------


def assert_valid_name(s: Any) -> None:
    """Raise RefError unless ``s`` is a valid derivation name."""
    parse_name(s)


def assert_valid_dref(d: Any) -> None:
    """Raise RefError unless ``d`` is a well-formed DRef."""
    parse_dref(d)


def assert_valid_rref(r: Any) -> None:
    """Raise RefError unless ``r`` is a well-formed RRef."""
    parse_rref(r)


def assert_valid_hashpart(h: Any) -> None:
    """Raise RefError unless ``h`` is a ref hash part (32 lower-case hex characters)."""
    if not is_hashpart(h):
        raise RefError(f"{h!r} is not a hash part ({HASH_LEN} lower-case hex characters)", ref=None)


def assert_valid_hash(h: Any) -> None:
    """Raise RefError unless ``h`` is a sha256 hex digest."""
    if not (isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h)):
        raise RefError(f"{h!r} is not a sha256 hex digest (64 hex characters)", ref=None)


def assert_valid_refpath(p: Any) -> None:
    """Raise RefError unless ``p`` is a RefPath ``[dref, 'sub', 'path']``."""
    if not is_refpath(p):
        raise RefError(f"{p!r} is not a RefPath [dref, 'sub', 'path']", ref=None)


def assert_valid_config(c: Any) -> None:
    """Raise ConfigError unless ``c`` is a valid :class:`Config`."""
    if not isinstance(c, Config):
        raise ConfigError(f"{c!r} is not a Config: build one with mkconfig(dict)", key_path=())
    mkconfig(c.val)


def assert_valid_dict(d: Any, name: str = "dict") -> None:
    """Raise ConfigError unless ``d`` is plain JSON data."""
    if not isinstance(d, dict):
        raise ConfigError(f"{name} is {type(d).__name__}, not a dict", key_path=())
    check_json(d)


def assert_serializable(d: Any, name: str = "value") -> None:
    """Raise ConfigError unless ``d`` is plain JSON data."""
    check_json(d)


def assert_valid_context(ctx: Any) -> None:
    """Raise RefError unless ``ctx`` maps DRefs to lists of their RRefs."""
    if not isinstance(ctx, dict):
        raise RefError(f"a context is a dict {{dref: [rref]}}, got {type(ctx).__name__}", ref=None)
    for d, rr in ctx.items():
        parse_dref(d)
        if not isinstance(rr, list) or any(not is_rref(r) or rref2dref(r) != d for r in rr):
            raise RefError(f"context entry {d}: {rr!r} is not a list of its RRefs", ref=d)


def assert_valid_closure(c: Any) -> None:
    """Raise RefError unless ``c`` is a :class:`Closure`."""
    if not isinstance(c, Closure):
        raise RefError(f"{c!r} is not a Closure (instantiate() returns one)", ref=None)


def assert_valid_storage(S: StorageSettings | None = None) -> None:
    """Raise StoreError unless the store exists and is of this version."""
    check_store(fsS(S))


def assert_store_initialized() -> None:
    """Raise StoreError unless the default store exists."""
    check_store(fsS(None))


def assert_have_realizers(r: Registry, drefs: Iterable[DRef]) -> None:
    """Raise InstantiateError unless every DRef is registered in ``r``."""
    for d in drefs:
        if d not in r.builders:
            raise InstantiateError(
                f"{d} is not registered in {r!r}: was it instantiated in another registry?",
                dref=d,
            )


def assert_rref_deps(c: Config) -> None:
    """Raise ConfigError if the config mentions RRefs (configs depend on DRefs only)."""
    found = scan_refs(c.val)[1]
    if found:
        raise ConfigError(
            f"the config mentions {found[0]}: configs depend on DRefs, not RRefs "
            "(use match_exact([rref]) to pin a realization)",
            key_path=(),
        )


def assert_promise_fulfilled(k: str, p: RefPath, o: str) -> None:
    """Raise PromiseError unless the promised path ``p`` of key ``k`` exists in folder ``o``."""
    path = os.path.join(o, *p[1:])
    if not os.path.lexists(path):
        raise PromiseError(
            f"promise {k!r} ({p!r}) is not fulfilled: {path!r} is missing", dref=None
        )

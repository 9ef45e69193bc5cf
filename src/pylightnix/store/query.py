"""Read-only queries over the store: configs, contexts, realizations, dependencies.

Realizations are immutable, so what is read of them (context, metadata) is
cached per process; configs too, keyed by DRef (a DRef is the hash of its config).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from pylightnix.config import Config, RConfig, cfg_attrs, mkconfig, resolve_selfrefs
from pylightnix.errors import RefError
from pylightnix.hashing import context_hash
from pylightnix.refs import (
    dref_dirname,
    is_hashpart,
    maybe_parse_dref_dirname,
    mkrref,
    mkrrefs,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.fsops import store_os_error
from pylightnix.store.layout import (
    CONFIG_FILE,
    CONTEXT_FILE,
    FAILURE_FILE,
    META_FILE,
    RESERVED,
    check_store,
    dref2path,
    failed_index_dir,
    index_dir,
    rref2path_,
)
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import Context, DRef, Path, RRef

_CFG_CACHE: dict[tuple[str, DRef], Config] = {}
_CTX_CACHE: dict[tuple[str, RRef], Context] = {}
_META_CACHE: dict[tuple[str, RRef], dict[str, Any]] = {}


def forget_cached(S: StorageSettings) -> None:
    """Drop everything cached about the store ``S`` (after it was emptied or replaced)."""
    caches: tuple[dict[Any, Any], ...] = (_CFG_CACHE, _CTX_CACHE, _META_CACHE)
    for cache in caches:
        for key in [k for k in cache if k[0] == S.storage]:
            del cache[key]


def forget_cached_ref(S: StorageSettings, ref: DRef | RRef) -> None:
    """Drop what is cached about one object of ``S`` (it was removed)."""
    for cache in (_CFG_CACHE, _CTX_CACHE, _META_CACHE):
        cache.pop((S.storage, ref), None)  # type: ignore[arg-type]


def _S(S: StorageSettings | None) -> StorageSettings:
    s = fsS(S)
    check_store(s)
    return s


def rref2path(rref: RRef, S: StorageSettings | None = None) -> Path:
    """The folder of a stored realization.

    Raises:
        RefError: ``rref`` is malformed or not in the store.
    """
    s = _S(S)
    p = rref2path_(rref, s)
    if not os.path.isdir(p):
        raise RefError(
            f"{rref} is not in the store at {s.storage!r} (removed, or built in another store?)",
            ref=rref,
        )
    return p


def dref2path_checked(dref: DRef, S: StorageSettings | None = None) -> Path:
    """The folder of a stored derivation (raises if it is not stored)."""
    s = _S(S)
    p = dref2path(dref, s)
    if not os.path.isfile(os.path.join(p, CONFIG_FILE)):
        raise RefError(
            f"{dref} is not in the store at {s.storage!r} (instantiate its stage first)",
            ref=dref,
        )
    return p


def store_dref2path(dref: DRef, S: StorageSettings | None = None) -> Path:
    """The seed's ``dref2path``: the folder of a stored derivation."""
    return dref2path_checked(dref, S)


def drefcfg_(dref: DRef, S: StorageSettings | None = None) -> Config:
    """The stored :class:`Config` of a derivation (cached)."""
    s = _S(S)
    key = (s.storage, dref)
    c = _CFG_CACHE.get(key)
    if c is None:
        p = os.path.join(dref2path_checked(dref, s), CONFIG_FILE)
        with open(p, "rb") as f:
            c = mkconfig(json.loads(f.read()))
        _CFG_CACHE[key] = c
    return c


def drefcfg(dref: DRef, S: StorageSettings | None = None) -> RConfig:
    """The config of a derivation with its self-refs resolved."""
    return resolve_selfrefs(drefcfg_(dref, S), dref)


def drefattrs(dref: DRef, S: StorageSettings | None = None) -> SimpleNamespace:
    """Attribute view of a derivation's resolved config."""
    return cfg_attrs(drefcfg(dref, S))


def rrefattrs(rref: RRef, S: StorageSettings | None = None) -> SimpleNamespace:
    """Attribute view of the resolved config of the derivation ``rref`` realizes."""
    return drefattrs(rref2dref(rref), S)


def rrefctx(rref: RRef, S: StorageSettings | None = None) -> Context:
    """The direct context of a realization: the realizations of each dependency it used."""
    s = _S(S)
    key = (s.storage, rref)
    c = _CTX_CACHE.get(key)
    if c is None:
        p = os.path.join(rref2path(rref, s), RESERVED, CONTEXT_FILE)
        with open(p, "rb") as f:
            raw = json.loads(f.read())
        c = {DRef(k): [RRef(x) for x in v] for k, v in raw.items()}
        _CTX_CACHE[key] = c
    return {k: list(v) for k, v in c.items()}


def rrefmeta(rref: RRef, S: StorageSettings | None = None) -> dict[str, Any]:
    """Build metadata of a realization (times, host); not covered by its hash."""
    s = _S(S)
    key = (s.storage, rref)
    m = _META_CACHE.get(key)
    if m is None:
        p = os.path.join(rref2path_(rref, s), RESERVED, META_FILE)
        try:
            with open(p, "rb") as f:
                m = json.loads(f.read())
        except FileNotFoundError:
            raise RefError(f"{rref} is not in the store at {s.storage!r}", ref=rref) from None
        _META_CACHE[key] = m
    return dict(m)


def rrefbstart(rref: RRef, S: StorageSettings | None = None) -> float:
    """Build start time of a realization (seconds since the epoch)."""
    return float(rrefmeta(rref, S).get("build_start", 0.0))


def alldrefs(S: StorageSettings | None = None) -> Iterator[DRef]:
    """Every derivation in the store."""
    s = _S(S)
    for n in sorted(os.listdir(s.storage)):
        d = maybe_parse_dref_dirname(n)
        if d is not None and os.path.isfile(os.path.join(s.storage, n, CONFIG_FILE)):
            yield d


def drefrrefs(dref: DRef, S: StorageSettings | None = None) -> list[RRef]:
    """Every realization of a derivation, sorted."""
    s = _S(S)
    dhash, name = parse_dref(dref)
    p = dref2path(dref, s)
    try:
        names = os.listdir(p)
    except FileNotFoundError:
        return []
    return sorted(
        mkrref(n, dhash, name)  # type: ignore[arg-type]
        for n in names
        if is_hashpart(n) and os.path.isdir(os.path.join(p, n, RESERVED))
    )


def drefrrefsC(dref: DRef, context: Context, S: StorageSettings | None = None) -> list[RRef]:
    """Realizations of ``dref`` built in exactly ``context``, found through the index."""
    s = _S(S)
    return drefrrefs_chash(dref, context_hash(context), s)


def drefrrefs_chash(dref: DRef, chash: str, S: StorageSettings) -> list[RRef]:
    """Realizations of ``dref`` whose context hash is ``chash`` (no validation of ``S``)."""
    try:
        names = os.listdir(index_dir(dref, chash, S))
    except FileNotFoundError:
        return []
    except NotADirectoryError as e:
        raise store_os_error(e, f"reading the index of {dref}", index_dir(dref, chash, S)) from e
    if not names:
        return []
    dhash, name = parse_dref(dref)
    base = dref2path(dref, S)
    # A marker is made before its realization is renamed in: check the folder exists.
    return sorted(mkrrefs([n for n in names if os.path.isdir(os.path.join(base, n))], dhash, name))


def allrrefs(S: StorageSettings | None = None) -> Iterator[RRef]:
    """Every realization in the store."""
    s = _S(S)
    for d in alldrefs(s):
        yield from drefrrefs(d, s)


def drefdeps1(drefs: Iterable[DRef], S: StorageSettings | None = None) -> set[DRef]:
    """Direct dependencies of the given derivations."""
    from pylightnix.config import config_deps

    out: set[DRef] = set()
    for d in drefs:
        out.update(config_deps(drefcfg_(d, S)))
    return out


def drefdeps(drefs: Iterable[DRef], S: StorageSettings | None = None) -> set[DRef]:
    """All (transitive) dependencies of the given derivations, excluding them."""
    start = list(drefs)
    seen: set[DRef] = set()
    stack = list(drefdeps1(start, S))
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        stack.extend(drefdeps1([d], S) - seen)
    return seen


def rrefdeps1(rrefs: Iterable[RRef], S: StorageSettings | None = None) -> set[RRef]:
    """Realizations the given realizations were built from (direct)."""
    out: set[RRef] = set()
    for r in rrefs:
        for v in rrefctx(r, S).values():
            out.update(v)
    return out


def rrefdeps(rrefs: Iterable[RRef], S: StorageSettings | None = None) -> set[RRef]:
    """All realizations the given ones depend on (transitive), excluding them."""
    seen: set[RRef] = set()
    stack = list(rrefdeps1(rrefs, S))
    while stack:
        r = stack.pop()
        if r in seen:
            continue
        seen.add(r)
        stack.extend(rrefdeps1([r], S) - seen)
    return seen


def rootdrefs(S: StorageSettings | None = None) -> set[DRef]:
    """Derivations no other stored derivation depends on."""
    s = _S(S)
    alls = set(alldrefs(s))
    return alls - drefdeps1(alls, s)


def rootrrefs(S: StorageSettings | None = None) -> set[RRef]:
    """Realizations no other stored realization depends on."""
    s = _S(S)
    alls = set(allrrefs(s))
    return alls - rrefdeps1(alls, s)


def rrefdata(rref: RRef, S: StorageSettings | None = None) -> Iterator[Path]:
    """Paths of the top-level artifacts of a realization (reserved files left out)."""
    p = rref2path(rref, S)
    for n in sorted(os.listdir(p)):
        if n != RESERVED:
            yield Path(os.path.join(p, n))


def path2dref(path: str, S: StorageSettings | None = None) -> DRef | None:
    """The DRef of a path inside the store's derivation folder, or ``None``."""
    s = fsS(S)
    rel = os.path.relpath(os.path.abspath(path), s.storage)
    if rel.startswith(".."):
        return None
    return maybe_parse_dref_dirname(rel.split(os.sep)[0])


def path2rref(path: str, S: StorageSettings | None = None) -> RRef | None:
    """The RRef of a path inside a stored realization, or ``None``."""
    return rref_under(os.path.abspath(path), fsS(S).storage)


def rref_under(path: str, storage: str) -> RRef | None:
    """The realization holding ``path`` (itself or a file in it) in the folder ``storage``.

    >>> rref_under("/s/" + "a" * 32 + "-x/" + "b" * 32 + "/f.txt", "/s")[:12]
    'rref:bbbbbbb'
    """
    rel = os.path.relpath(path, storage)
    parts = rel.split(os.sep)
    if rel.startswith("..") or len(parts) < 2:
        return None
    d = maybe_parse_dref_dirname(parts[0])
    if d is None or not is_hashpart(parts[1]):
        return None
    dhash, name = parse_dref(d)
    return mkrref(parts[1], dhash, name)  # type: ignore[arg-type]


def store_reindex(S: StorageSettings | None = None) -> int:
    """Rebuild the context index from the realization folders; return markers made."""
    s = _S(S)
    made = 0
    for r in allrrefs(s):
        rhash, _, _ = parse_rref(r)
        chash = context_hash(rrefctx(r, s))
        # A failed realization (failures.py) must never become a matcher candidate.
        failed = os.path.exists(os.path.join(rref2path_(r, s), RESERVED, FAILURE_FILE))
        idx = (failed_index_dir if failed else index_dir)(rref2dref(r), chash, s)
        m = os.path.join(idx, rhash)
        if not os.path.exists(m):
            os.makedirs(idx, exist_ok=True)
            os.close(os.open(m, os.O_WRONLY | os.O_CREAT, 0o444))
            made += 1
    return made


def dref_exists(dref: DRef, S: StorageSettings) -> bool:
    """Tell whether the derivation's config is stored."""
    return os.path.isfile(os.path.join(S.storage, dref_dirname(dref), CONFIG_FILE))

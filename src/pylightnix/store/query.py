"""Read-only queries over the store: configs, contexts, realizations, dependencies.

Realizations are immutable, so what is read of them (context, metadata) is
cached per process; configs too, keyed by DRef (a DRef is the hash of its config).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from pylightnix.config import Config, RConfig, cfg_attrs, mkconfig, resolve_selfrefs
from pylightnix.errors import IntegrityError, RefError
from pylightnix.hashing import context_hash
from pylightnix.refs import (
    HASH_LEN,
    dref_dirname,
    folder_rref,
    is_hashpart,
    is_rref,
    maybe_parse_dref_dirname,
    mkrref,
    mkrrefs,
    parse_dref,
    parse_rref,
    rref2dref,
)
from pylightnix.store.facts import (
    ScoreNotANumberError,
    ScoreOutsideStoreError,
    bstart_of,
    bstarts,
    forget_facts,
    read_score_file,
)
from pylightnix.store.index import Index, index_path, read_index, rebuild_index
from pylightnix.store.layout import (
    CHASH_LEN,
    CONFIG_FILE,
    CONTEXT_FILE,
    FAILURE_FILE,
    META_FILE,
    RESERVED,
    check_store,
    dref2path,
    is_whole,
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
    for idx in [k for k in _LISTINGS if k[0].startswith(S.storage + os.sep)]:
        del _LISTINGS[idx]
    forget_facts(S)


def forget_cached_ref(S: StorageSettings, ref: DRef | RRef) -> None:
    """Drop what is cached about one object of ``S`` (it was removed)."""
    for cache in (_CFG_CACHE, _CTX_CACHE, _META_CACHE):
        cache.pop((S.storage, ref), None)  # type: ignore[arg-type]
    forget_facts(S, rref2dref(RRef(ref)) if is_rref(ref) else DRef(ref))


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


def remember_config(S: StorageSettings, dref: DRef, data: bytes) -> None:
    """Cache the config of a stored derivation from its canonical bytes (what
    :func:`drefcfg_` would read from its ``config.json``), sparing a build that read."""
    key = (S.storage, dref)
    if key not in _CFG_CACHE:
        # Canonical bytes of a validated config: parsed, not validated again.
        _CFG_CACHE[key] = Config(json.loads(data), data)


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
        try:
            raw = json.loads(read_nofollow(p))
        except (FileNotFoundError, NotADirectoryError):
            raise damaged_error(rref, f"its {RESERVED}/{CONTEXT_FILE} is missing") from None
        except (OSError, ValueError) as e:
            # O_NOFOLLOW: a symlink planted there must not be read out of the store.
            raise damaged_error(rref, f"its {RESERVED}/{CONTEXT_FILE} is unreadable ({e})") from e
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
            m = json.loads(read_nofollow(p))
        except (FileNotFoundError, NotADirectoryError):
            if os.path.isdir(rref2path_(rref, s)):
                raise damaged_error(rref, f"its {RESERVED}/{META_FILE} is missing") from None
            raise RefError(f"{rref} is not in the store at {s.storage!r}", ref=rref) from None
        except (OSError, ValueError) as e:
            raise damaged_error(rref, f"its {RESERVED}/{META_FILE} is unreadable ({e})") from e
        _META_CACHE[key] = m
    return dict(m)


def read_nofollow(path: str) -> bytes:
    """The bytes of the file ``path``, refusing to follow a symlink in its last component.

    The store's reserved files are regular files; a symlink there (a damaged
    or forged realization) would make a query read outside the store.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def damaged_error(rref: RRef, why: str) -> IntegrityError:
    """The error for reading a realization whose reserved files are damaged."""
    return IntegrityError(
        f"{rref} is damaged: {why} (run `pylightnix verify --repair` to remove or "
        "quarantine it; the next realize builds it again)",
        ref=rref,
    )


def rrefbstart(rref: RRef, S: StorageSettings | None = None) -> float:
    """Build start time of a realization (seconds since the epoch; from its ``index.tsv``)."""
    parse_rref(rref)
    return bstarts(_S(S), [rref])[0]


def alldrefs(S: StorageSettings | None = None) -> Iterator[DRef]:
    """Every derivation in the store."""
    s = _S(S)
    for n in sorted(os.listdir(s.storage)):
        d = maybe_parse_dref_dirname(n)
        if d is not None and os.path.isfile(os.path.join(s.storage, n, CONFIG_FILE)):
            yield d


def drefrrefs(dref: DRef, S: StorageSettings | None = None, *, damaged: bool = False) -> list[RRef]:
    """Every realization of a derivation, sorted.

    One listing of the derivation folder: its sub-folders named by a hash
    are its realizations (each appears by one rename of a complete folder),
    told apart by the listing's entry types.

    Args:
        dref: the derivation.
        S: the store.
        damaged: also list realization folders whose reserved folder is
            missing (damaged by hand: :func:`~pylightnix.store.verify.verify`
            reports them); by default only intact ones are listed (one
            ``stat`` each).
    """
    s = _S(S)
    n = dref_dirname(dref)
    folders = _folders(f"{s.storage}{os.sep}{n}", n)[1]
    return [r for r, p in folders if damaged or is_whole(p)]


def alldrefs_rrefs(
    S: StorageSettings | None = None, *, key: Callable[[DRef], Any] | None = None
) -> Iterator[tuple[DRef, list[RRef]]]:
    """Every derivation with its realizations, one ``scandir`` each, in the order of ``key``.

    The store's listing gives the candidates (no ``stat`` each); a folder
    without its ``config.json`` is no derivation and is left out.
    """
    s = _S(S)
    prefix = os.path.join(s.storage, "")
    found = [(d, n) for n in os.listdir(s.storage) if (d := maybe_parse_dref_dirname(n))]
    if key is None:
        found.sort()
    else:
        found.sort(key=lambda x: key(x[0]))
    for d, n in found:
        config, folders = _folders(prefix + n, n)
        if config:
            yield d, [r for r, _ in folders]


def drefrrefsC(dref: DRef, context: Context, S: StorageSettings | None = None) -> list[RRef]:
    """Realizations of ``dref`` built in exactly ``context``, found through the index."""
    s = _S(S)
    return drefrrefs_chash(dref, context_hash(context), s)


def drefrrefs_chash(dref: DRef, chash: str, S: StorageSettings) -> list[RRef]:
    """Realizations of ``dref`` whose context hash is ``chash`` (no validation of ``S``).

    The derivation's ``index.tsv`` names them (one ``stat`` when this process
    read it already); the ones whose folder exists are the answer. A large
    answer is kept in memory while neither the index nor the derivation
    folder changes (see :data:`_SETTLED_NS`): then a lookup costs two
    ``stat`` calls however many realizations there are.
    """
    ix = read_index(S, dref)
    known = ix.ctx.get(chash[:CHASH_LEN])
    if not known:
        return []
    ipath = index_path(S, dref)
    base = os.path.dirname(ipath)
    key = (ipath, chash[:CHASH_LEN])
    cached = _LISTINGS.get(key)
    if cached is not None:
        if cached[:2] == (ix.ino, ix.offset):
            try:
                if os.stat(base).st_mtime_ns == cached[2]:
                    return list(cached[3])
            except FileNotFoundError:
                pass
        del _LISTINGS[key]
    dhash, name = parse_dref(dref)
    mtime = 0
    now = 0
    # A line is appended before its realization is renamed in: check the folder exists.
    if len(known) <= _STAT_EACH_MAX:
        # Checking its reserved folder costs the same one stat and never offers a
        # realization damaged by hand (its reserved folder removed) to a matcher.
        names = [n for n in known if _whole(base, n)]
    else:
        # Many candidates: one listing of the derivation folder, not a stat each;
        # the folder's time taken first, then listed: a change in between shows
        # in the time, so the answer may be kept.
        now = time.time_ns()
        try:
            mtime = os.stat(base).st_mtime_ns
            present = set(os.listdir(base))
        except FileNotFoundError:
            return []
        names = list(filter(present.__contains__, known))
    # Same derivation, so sorting the hash parts sorts the RRefs.
    names.sort()
    out = mkrrefs(names, dhash, name)
    if len(out) > _STAT_EACH_MAX and mtime < now - _SETTLED_NS:
        _LISTINGS[key] = (ix.ino, ix.offset, mtime, tuple(out))
    return out


def indexed_candidates(dref: DRef, chash: str, S: StorageSettings) -> tuple[Index, list[str]]:
    """The index of ``dref`` and the realization hashes it lists in context ``chash``, in
    the order they were appended: possibly with an insertion still in flight or one a
    crash left undone (see :func:`in_place`); :func:`drefrrefs_chash` gives only those
    in place."""
    ix = read_index(S, dref)
    return ix, list(ix.ctx.get(chash[:CHASH_LEN], ()))


def in_place(dref: DRef, hashes: Iterable[str], S: StorageSettings) -> bool:
    """Whether every realization ``hashes`` of ``dref`` is in the store with its reserved
    folder (a ``stat`` each: the check :func:`drefrrefs_chash` makes of few candidates)."""
    base = os.path.dirname(index_path(S, dref))
    return all(_whole(base, h) for h in hashes)


def _whole(base: str, rhash: str) -> bool:
    """Whether the realization ``rhash`` of the derivation folder ``base`` is whole."""
    return is_whole(f"{base}{os.sep}{rhash}")


_STAT_EACH_MAX = 4
"""Up to this many candidates, a stat each is cheaper than listing the derivation folder."""

_SETTLED_NS = 1_000_000_000
"""A listing is kept only when the derivation folder was last changed this long before it.

Any later change to the folder (a realization renamed in or deleted) sets
its modification time to the time of the change, which is then later than
the kept one even on filesystems whose timestamps are coarse (ticks of a
few milliseconds): so an equal time proves the folder unchanged. A folder
changed less than this before the listing could change again within the
same timestamp tick unseen, so its listing is not kept. The index file
needs no such rule: it only grows (or is replaced: a new inode), and the
length read is exact.
"""

_LISTINGS: dict[tuple[str, str], tuple[int, int, int, tuple[RRef, ...]]] = {}
"""(index file, context hash) -> (its inode, length read, the derivation folder's mtime,
the realizations found)."""


def allrrefs(S: StorageSettings | None = None) -> Iterator[RRef]:
    """Every realization folder in the store, damaged ones included, sorted by derivation.

    A folder whose reserved folder was removed by hand, or whose derivation
    lost its ``config.json``, is listed too, so that ``verify`` checks and
    reports it; :func:`drefrrefs` (and realize) see only intact realizations.
    One ``scandir`` per derivation, no ``stat`` per realization.
    """
    for _, _, rrefs in derivation_listings(_S(S)):
        yield from rrefs


def derivation_listings(S: StorageSettings) -> Iterator[tuple[DRef, bool, list[RRef]]]:
    """Every derivation folder in name order: whether its config is stored, and its
    realization folders (damaged ones included), one ``scandir`` each."""
    for d, config, folders in derivation_folders(S):
        yield d, config, [r for r, _ in folders]


def derivation_folders(
    S: StorageSettings,
) -> Iterator[tuple[DRef, bool, list[tuple[RRef, str]]]]:
    """Every derivation folder in name order: whether its config is stored, and its
    realization folders (damaged ones included) with their paths, one ``scandir`` each."""
    prefix = os.path.join(S.storage, "")  # paths as os.path.join(storage, name) makes them
    for n in sorted(os.listdir(S.storage)):
        d = maybe_parse_dref_dirname(n)
        if d is not None:
            yield (d, *_folders(prefix + n, n))


def _folders(ddir: str, n: str) -> tuple[bool, list[tuple[RRef, str]]]:
    """Whether the derivation folder ``ddir`` (named ``n``) holds its config, and its
    realization folders (RRef and path, sorted): one ``scandir``, no ``stat``."""
    folders: list[tuple[RRef, str]] = []
    config = False
    try:
        with os.scandir(ddir) as it:
            for e in it:
                h = e.name
                if len(h) == HASH_LEN and e.is_dir(follow_symlinks=False) and is_hashpart(h):
                    folders.append((folder_rref(h, n), e.path))
                elif h == CONFIG_FILE and not e.is_dir(follow_symlinks=False):
                    config = True
    except (FileNotFoundError, NotADirectoryError):
        return False, []
    folders.sort()
    return config, folders


def intact_rrefs(S: StorageSettings) -> Iterator[RRef]:
    """Every realization of a stored derivation with its reserved folder in place."""
    for d in alldrefs(S):
        yield from drefrrefs(d, S)


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
    # A damaged realization has no readable context: it uses nothing (verify reports it).
    return alls - rrefdeps1(intact_rrefs(s), s)


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
    """Write every derivation's index again from its realization folders.

    Scores the old index knew are read again from the realizations, so
    ``match_best`` finds them cached afterwards; chosen records are kept, and
    so are the lines of realizations a live process is inserting (registered
    as its temporary roots, their folders not renamed in yet). Returns the
    number of realizations that were missing from the index.
    """
    from pylightnix.store.temproots import TempRootsReader  # the store's GC roots

    s = _S(S)
    reader = TempRootsReader(s, remove_dead=False)
    registered: set[str] = set()
    made = [0]
    for d in alldrefs(s):

        def build(old: Index, d: DRef = d) -> Index:
            new = Index(chosen=dict(old.chosen))
            for r in drefrrefs(d, s):
                rhash = parse_rref(r)[0]
                chash = context_hash(rrefctx(r, s))[:CHASH_LEN]
                # A failed realization (failures.py) must never become a matcher candidate.
                failed = os.path.exists(os.path.join(rref2path_(r, s), RESERVED, FAILURE_FILE))
                (new.failed if failed else new.ctx).setdefault(chash, {})[rhash] = None
                if rhash not in old.ctx.get(chash, {}) and rhash not in old.failed.get(chash, {}):
                    made[0] += 1
                new.bstart[rhash] = bstart_of(rrefmeta(r, s))
                for filename in old.scores:
                    try:
                        value = read_score_file(s, r, filename)
                    except (ScoreNotANumberError, ScoreOutsideStoreError):
                        continue  # match_best reports it when it ranks
                    new.scores.setdefault(filename, {})[rhash] = value
            _keep_in_flight(d, old, new, registered)
            return new

        rebuild_index(s, d, build, locked=lambda: registered.update(reader.read()))
        forget_facts(s, d)
    return made[0]


def _keep_in_flight(d: DRef, old: Index, new: Index, registered: set[str]) -> None:
    """Copy into ``new`` the lines of ``old`` whose realization a live process registered
    but has not renamed in yet (an insertion between its line and its rename)."""
    dhash, name = parse_dref(d)
    for src, dst in ((old.ctx, new.ctx), (old.failed, new.failed)):
        for chash, hs in src.items():
            for h in hs:
                if h not in new.bstart and mkrref(h, dhash, name) in registered:  # type: ignore[arg-type]
                    dst.setdefault(chash, {})[h] = None
                    new.bstart[h] = old.bstart.get(h, 0.0)


def dref_exists(dref: DRef, S: StorageSettings) -> bool:
    """Tell whether the derivation's config is stored."""
    return os.path.isfile(os.path.join(S.storage, dref_dirname(dref), CONFIG_FILE))

"""Import a store made by the original Pylightnix (``store-v0``) into this store.

The original's layouts (0.2.x and 0.3.x, both named ``store-v0``)::

    <root>/store-v0/<dhash32>-<name>/config.json      config (key order as written)
    <root>/store-v0/<dhash32>-<name>/<rhash32>/       one realization:
        context.json                                  {old dref: [old rref] | null}, transitive
        __buildtime__.txt | __buildstart__.txt        build start (0.2.x | 0.3.x)
        __buildstop__.txt                             build stop
        tag.txt, group.txt, group.json                0.2.x output tags
        either_status.txt                             0.3.x failed ("LEFT") build
        <artifacts>

Nothing in the old store is written. Every derivation is re-hashed here
(canonical config; ``["__promise__"|"__claim__"|"__self__", ...]`` become
``[selfref, ...]``; old DRefs in configs become the new ones), in dependency
order (configs differing only in key order become one derivation); every
realization is copied into the temporary folder, its old
metadata files dropped, and inserted under its new content hash with a
context of its direct dependencies mapped old RRef -> new RRef. What cannot
be carried over is skipped and reported with the reason: invalid configs,
configs naming derivations missing from the old store, realizations whose
dependencies were skipped, non-``out`` output tags (0.2.x), failed builds of
the either module (0.3.x), and outputs this store refuses (a special file, a
``__pylightnix__`` entry).

Crash safety is the engine's: each object is inserted atomically, so an
interrupted migration leaves complete objects and temporary leftovers (GC
removes them); running it again skips what is already there (same hashes:
each old realization is hashed in place first, and copied only when its new
RRef is not stored yet).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import Config, config_deps, config_hash, config_name, mkconfig, selfref
from pylightnix.errors import PylightnixError, StoreError
from pylightnix.hashing import context_hash, hash_tree, realization_hash
from pylightnix.refs import mkdref, mkrref, parse_dref
from pylightnix.store.fsops import make_writable, mkdtemp_in, remove_tree
from pylightnix.store.insert import store_derivation, store_realization
from pylightnix.store.layout import check_store, rref2path_
from pylightnix.store.links import parsetime
from pylightnix.store.locks import gc_shared
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import Context, DRef, RRef

OLD_STORE_DIR = "store-v0"
OLD_TAGS = ("__promise__", "__claim__", "__self__")
OLD_METADATA = (
    "context.json",
    "__buildtime__.txt",
    "__buildstart__.txt",
    "__buildstop__.txt",
    "tag.txt",
    "group.txt",
    "group.json",
)
_DIR_RE = re.compile(r"([0-9a-f]{32})-([A-Za-z0-9_-]+)\Z")
_RHASH_RE = re.compile(r"[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class Skipped:
    """An object of the old store that was not carried over.

    Attributes:
        ref: the old DRef or RRef.
        reason: why.
    """

    ref: str
    reason: str


@dataclass(frozen=True)
class MigrateResult:
    """What :func:`migrate_store` did.

    Attributes:
        source: the old ``store-v0`` folder.
        drefs: old DRef -> new DRef of every derivation carried over.
        rrefs: old RRef -> new RRef of every realization carried over.
        skipped: what was not carried over, with reasons, in the order met.
    """

    source: str
    drefs: dict[str, DRef] = field(default_factory=dict)
    rrefs: dict[str, RRef] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    @property
    def ok(self) -> bool:
        """Everything was carried over."""
        return not self.skipped


def old_store_path(path: str) -> str:
    """The ``store-v0`` folder of ``path`` (the folder itself or the root holding it).

    Raises:
        StoreError: ``path`` is neither.
    """
    p = os.path.abspath(path)
    for cand in (p, os.path.join(p, OLD_STORE_DIR)):
        if os.path.basename(cand) == OLD_STORE_DIR and os.path.isdir(cand):
            return cand
    raise StoreError(
        f"{path!r} is not a store of the original Pylightnix: expected a folder named "
        f"{OLD_STORE_DIR!r} or a root folder holding one (e.g. ~/_pylightnix)",
        path=path,
    )


def _old_dref(dirname: str) -> str:
    return f"dref:{dirname}"


def _read_json(path: str) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def _translate(v: Any, dmap: dict[str, DRef], missing: list[str]) -> Any:
    """The old config value with old DRefs mapped and old self-ref tags replaced."""
    if isinstance(v, str):
        if v.startswith("dref:") and _DIR_RE.match(v[5:]):
            if v in dmap:
                return dmap[v]
            missing.append(v)
        return v
    if isinstance(v, list):
        if v and isinstance(v[0], str) and v[0] in OLD_TAGS:
            return [selfref, *v[1:]]
        return [_translate(x, dmap, missing) for x in v]
    if isinstance(v, dict):
        return {k: _translate(x, dmap, missing) for k, x in v.items()}
    return v


def _old_deps(v: Any, out: set[str]) -> None:
    if isinstance(v, str):
        if v.startswith("dref:") and _DIR_RE.match(v[5:]):
            out.add(v)
    elif isinstance(v, list):
        for x in v:
            _old_deps(x, out)
    elif isinstance(v, dict):
        for x in v.values():
            _old_deps(x, out)


def _order(configs: dict[str, Any]) -> list[str]:
    """Old DRefs, each after the old DRefs its config names (unknown names ignored)."""
    deps = {d: {x for x in _deps_of(c) if x in configs and x != d} for d, c in configs.items()}
    out: list[str] = []
    done: set[str] = set()
    seen: set[str] = set()  # expanded once: a cycle is not walked again (it is skipped later)
    for start in sorted(configs):
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            d, expanded = stack.pop()
            if d in done:
                continue
            if expanded:
                done.add(d)
                out.append(d)
                continue
            if d in seen:
                continue
            seen.add(d)
            stack.append((d, True))
            stack.extend((x, False) for x in sorted(deps[d]) if x not in done)
    return out


def _deps_of(c: Any) -> set[str]:
    s: set[str] = set()
    _old_deps(c, s)
    return s


def _read_time(folder: str, names: tuple[str, ...]) -> float | None:
    for n in names:
        try:
            with open(os.path.join(folder, n), encoding="utf-8") as f:
                t = parsetime(f.read().strip())
        except (OSError, UnicodeDecodeError):
            continue
        if t is not None:
            return t
    return None


class _Migration:
    def __init__(self, src: str, S: StorageSettings) -> None:
        self.src = src
        self.S = S
        self.drefs: dict[str, DRef] = {}
        self.rrefs: dict[str, RRef] = {}
        self.skipped: list[Skipped] = []
        self.configs: dict[DRef, Config] = {}
        # new DRef -> old DRefs (configs differing only in key order become one)
        self.back: dict[DRef, list[str]] = {}

    def skip(self, ref: str, reason: str) -> None:
        self.skipped.append(Skipped(ref, reason))

    def run(self) -> None:
        raw: dict[str, Any] = {}
        for n in sorted(os.listdir(self.src)):
            if n.endswith(".tmp") or not _DIR_RE.match(n):
                continue
            d = _old_dref(n)
            try:
                raw[d] = _read_json(os.path.join(self.src, n, "config.json"))
            except (OSError, ValueError) as e:
                self.skip(d, f"its config.json cannot be read: {e}")
        for d in _order(raw):
            if self.derivation(d, raw[d]):
                self.realizations(d)

    def derivation(self, old: str, cfg: Any) -> bool:
        missing: list[str] = []
        new_cfg = _translate(cfg, self.drefs, missing)
        if missing:
            self.skip(
                old,
                f"its config names {missing[0]}, which was not carried over "
                "(missing from the old store or skipped)",
            )
            return False
        try:
            c = mkconfig(new_cfg)
            new = mkdref(config_hash(c), config_name(c))
        except PylightnixError as e:
            self.skip(old, f"its config is not valid here: {e}")
            return False
        if not isinstance(new_cfg, dict) or new_cfg.get("name", "unnamed") != old.split("-", 1)[1]:
            self.skip(old, "its config's name does not match its folder name")
            return False
        store_derivation(self.S, new, c)
        self.drefs[old] = new
        self.back.setdefault(new, []).append(old)
        self.configs[new] = c
        return True

    def realizations(self, old: str) -> None:
        ddir = os.path.join(self.src, old[len("dref:") :])
        new = self.drefs[old]
        c = self.configs[new]
        deps = config_deps(c)
        for n in sorted(os.listdir(ddir)):
            folder = os.path.join(ddir, n)
            if not _RHASH_RE.match(n) or not os.path.isdir(folder):
                continue
            oldr = f"rref:{n}-{old[len('dref:') :]}"
            why = self.why_not(folder)
            if why is not None:
                self.skip(oldr, why)
                continue
            try:
                octx = _read_json(os.path.join(folder, "context.json"))
            except (OSError, ValueError) as e:
                self.skip(oldr, f"its context.json cannot be read: {e}")
                continue
            ctx = self.context(oldr, octx if isinstance(octx, dict) else {}, deps)
            if ctx is None:
                continue
            self.copy_in(oldr, folder, new, c, ctx)

    def why_not(self, folder: str) -> str | None:
        if os.path.exists(os.path.join(folder, "either_status.txt")):
            return "it is a failed build of the original's either module (either_status.txt)"
        gj = os.path.join(folder, "group.json")
        if os.path.exists(gj):
            return "it is a non-'out' output tag of a 0.2.x group (output tags were removed)"
        return None

    def context(self, oldr: str, octx: dict[str, Any], deps: list[DRef]) -> Context | None:
        ctx: Context = {}
        for d in deps:
            olds = [o for o in self.back[d] if octx.get(o)]
            if not olds:
                self.skip(oldr, f"its context.json has no realization of {self.back[d][0]}")
                return None
            entry = [r for o in olds for r in octx[o]]
            mapped = [self.rrefs.get(r) for r in entry]
            if any(m is None for m in mapped):
                bad = next(r for r, m in zip(entry, mapped, strict=True) if m is None)
                self.skip(oldr, f"it was built with {bad}, which was not carried over")
                return None
            ctx[d] = sorted({m for m in mapped if m is not None})
        return ctx

    def stored(self, folder: str, new: DRef, ctx: Context) -> RRef | None:
        """The new RRef of an old realization if it is already here (a rerun), else None."""
        tree = hash_tree(folder, exclude=OLD_METADATA)
        dhash, name = parse_dref(new)
        rref = mkrref(realization_hash(context_hash(ctx), tree), dhash, name)
        return rref if os.path.isdir(rref2path_(rref, self.S)) else None

    def copy_in(self, oldr: str, folder: str, new: DRef, c: Config, ctx: Context) -> None:
        try:
            done = self.stored(folder, new, ctx)
        except (OSError, PylightnixError) as e:
            self.skip(oldr, f"it cannot be stored here: {e}")
            return
        if done is not None:
            self.rrefs[oldr] = done
            return
        tmp = mkdtemp_in(self.S.tmpdir, "migrate")
        out = os.path.join(tmp, "out")
        try:
            shutil.copytree(
                folder,
                out,
                symlinks=True,
                ignore=lambda d, names: [n for n in names if d == folder and n in OLD_METADATA],
            )
            make_writable(out)
            start = _read_time(folder, ("__buildstart__.txt", "__buildtime__.txt")) or 0.0
            stop = _read_time(folder, ("__buildstop__.txt",))
            r = store_realization(
                self.S,
                new,
                c,
                ctx,
                out,
                build_start=start,
                build_stop=stop if stop is not None else start,
                meta={"migrated_from": oldr},
            )
            self.rrefs[oldr] = r
        except (OSError, PylightnixError) as e:
            self.skip(oldr, f"it cannot be stored here: {e}")
        finally:
            remove_tree(tmp)


def migrate_store(old_root: str, *, S: StorageSettings | None = None) -> MigrateResult:
    """Import the original Pylightnix's store at ``old_root`` into ``S``.

    Args:
        old_root: the old ``store-v0`` folder, or the root folder holding it.
        S: the destination store (default: the default store).

    Returns:
        a :class:`MigrateResult`: the old -> new ref maps and what was skipped, and why.

    Raises:
        StoreError: ``old_root`` is not an old store, or the destination store is
            missing or of another version.
    """
    src = old_store_path(old_root)
    s = fsS(S)
    check_store(s)
    if os.path.realpath(src) == os.path.realpath(s.storage):
        raise StoreError(f"{old_root!r} is the destination store itself", path=old_root)
    m = _Migration(src, s)
    with gc_shared(s):
        m.run()
    return MigrateResult(src, m.drefs, m.rrefs, tuple(m.skipped))

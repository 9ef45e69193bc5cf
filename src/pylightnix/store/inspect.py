"""Bash-like, read-only inspection of the store (the seed's ``lsref``, ``catref``, ``du``...).

Nothing here writes to the store. :func:`shellref` only starts a shell in a
folder; what the user does there is up to them (realizations are read-only).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import Config, config_dict
from pylightnix.errors import RefError
from pylightnix.hashing import hash_file
from pylightnix.refs import dref_name, is_dref, is_rref, rref2dref
from pylightnix.store.chosen import chosen_records
from pylightnix.store.facts import dref_bstarts
from pylightnix.store.fsops import tree_bytes
from pylightnix.store.layout import RESERVED, dref2path, outside_store_problem, rref2path_
from pylightnix.store.query import (
    _S,
    alldrefs,
    dref2path_checked,
    drefcfg_,
    drefrrefs,
    rref2path,
    rrefdeps,
)
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, Path, RRef


def lsref(ref: DRef | RRef, S: StorageSettings | None = None) -> list[str]:
    """List what a ref holds.

    Args:
        ref: an RRef (its top-level artifact names, without the store's
            reserved folder) or a DRef (the RRefs of its realizations).
        S: the store.

    Returns:
        Sorted names (RRef) or sorted RRefs (DRef).

    Raises:
        RefError: ``ref`` is malformed or not stored.
    """
    s = _S(S)
    if is_rref(ref):
        return sorted(n for n in os.listdir(rref2path(RRef(ref), s)) if n != RESERVED)
    if is_dref(ref):
        dref2path_checked(DRef(ref), s)
        return [str(r) for r in drefrrefs(DRef(ref), s)]
    raise RefError(f"lsref: {ref!r} is neither a DRef nor an RRef", ref=ref)


def _only_rref(dref: DRef, S: StorageSettings, who: str) -> RRef:
    """The one realization of ``dref``, or else the one its matcher picked at the last realize."""
    rrefs = drefrrefs(dref, S)
    if len(rrefs) == 1:
        return rrefs[0]
    records = sorted(chosen_records(S, dref).values(), key=lambda x: x.time)
    if records:
        picked = [r for r in records[-1].rrefs if r in set(rrefs)]
        if len(picked) == 1:
            return picked[0]
    raise RefError(
        f"{who}: {dref} has {len(rrefs)} realizations; name the one you mean by its RRef "
        f"(see lsref(dref), or `pylightnix runs {dref_name(dref)}`)",
        ref=dref,
    )


def refpath2path(
    ref_or_refpath: Any,
    path: list[str] | str | None = None,
    S: StorageSettings | None = None,
    *,
    who: str = "refpath2path",
) -> Path:
    """The system path of an RRef/DRef plus items, a RefPath, or a plain path.

    A DRef stands for its only realization or, when it has several, for the one
    its matcher picked at the last realize (store/chosen.py); an error when
    that is not exactly one.

    Raises:
        RefError: malformed ref, not stored, or several realizations of a DRef.
    """
    base, items, _ = _ref_base(ref_or_refpath, path, S, who)
    return Path(os.path.join(base, *items))


def _ref_base(
    x: Any, path: list[str] | str | None, S: StorageSettings | None, who: str
) -> tuple[Path, list[str], bool]:
    """The folder a ref (or plain path) stands for, the path items below it, and
    whether it is a realization of the store (not a plain path)."""
    s = _S(S)
    items = [path] if isinstance(path, str) else list(path or [])
    if isinstance(x, list) and x and (is_dref(x[0]) or is_rref(x[0])):
        x, items = x[0], [*x[1:], *items]
    if is_rref(x):
        return rref2path(RRef(x), s), items, True
    if is_dref(x):
        return rref2path(_only_rref(DRef(x), s, who), s), items, True
    if isinstance(x, str) and not x.startswith(("dref:", "rref:")):
        return Path(x), items, False
    raise RefError(f"{who}: {x!r} is not an RRef, DRef, RefPath or path", ref=x)


def escape_problem(base: str, rel: str, S: StorageSettings | None = None) -> str | None:
    """Why reading ``rel`` inside the realization folder ``base`` would leave it (or ``None``).

    ``rel`` itself must stay inside the realization (no ``..`` out of it, not
    absolute); symlinks on the way may lead to any file of the store (the
    same realization, a dependency), but never outside the store.

    >>> escape_problem("/s/d/r", "../../FORMAT")
    'is outside the realization'
    """
    norm = os.path.normpath(rel) if rel else "."
    if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
        return "is outside the realization"
    return outside_store_problem(os.path.join(base, norm), S)


def catref(
    ref_or_refpath: Any, path: list[str] | str | None = None, S: StorageSettings | None = None
) -> list[str]:
    """The lines (without line ends) of a UTF-8 text file of a realization.

    Reading through the store never leaves it: a symlink of the realization
    may point to another file of the store, not outside it.

    Args:
        ref_or_refpath: an RRef, a DRef with one realization, a RefPath
            ``[ref, "sub", "file"]`` or a plain path.
        path: the file inside the ref (a name, or a list of path items).
        S: the store.

    Raises:
        RefError: the ref cannot be resolved, or the file is missing, a folder,
            outside the realization or the store, or not UTF-8 text (read
            bytes with ``open(refpath2path(...), 'rb')``).
    """
    base, items, in_store = _ref_base(ref_or_refpath, path, S, "catref")
    p = os.path.join(base, *items)
    if in_store:
        rel = os.path.join(*items) if items else ""
        why = escape_problem(base, rel, S)
        if why is not None:
            raise RefError(
                f"catref: {rel!r} of {base} {why}: reading through the store never leaves it",
                ref=ref_or_refpath,
            )
    try:
        with open(p, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise RefError(f"catref: {p!r} is not a file ({e.strerror})", ref=ref_or_refpath) from e
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise RefError(
            f"catref: {p!r} is not UTF-8 text: read its bytes with open(path, 'rb')",
            ref=ref_or_refpath,
        ) from None


def shell(path: Any = None, S: StorageSettings | None = None) -> int:
    """Run ``$SHELL`` (or ``/bin/sh``) interactively in a folder; return its exit code.

    Args:
        path: a folder (a file means its folder), a running build (its output
            folder, to look at a build from inside its realizer), or ``None``
            (the store's storage folder).
        S: the store (for the default folder).
    """
    outpaths = getattr(path, "outpaths", None)
    if outpaths:
        # A Build (duck-typed: this layer must not import the realize layer).
        path = outpaths[0]
    where = str(path) if path is not None else fsS(S).storage
    if not os.path.isdir(where):
        where = os.path.dirname(where) or "."
    sh = os.environ.get("SHELL") or "/bin/sh"
    return subprocess.run([sh], cwd=where, check=False).returncode


def shellref(ref: Any = None, S: StorageSettings | None = None) -> int:
    """Open ``$SHELL`` in the folder of a ref (the seed's ``shellref``); return its exit code.

    Args:
        ref: an RRef, a DRef (its derivation folder), a RefPath, or ``None``
            (the storage folder).
        S: the store.
    """
    s = _S(S)
    if ref is None:
        return shell(s.storage)
    if is_dref(ref):
        return shell(dref2path_checked(DRef(ref), s))
    return shell(refpath2path(ref, None, s, who="shellref"))


@dataclass(frozen=True)
class DiskUsage(Mapping[DRef, tuple[int, dict[RRef, int]]]):
    """What :func:`du` measured: apparent bytes of files and links.

    It also reads as the original's ``du()`` dict:
    ``du()[dref] == (bytes of the derivation folder, {rref: bytes})``.

    Attributes:
        total: bytes of every derivation folder together.
        drefs: bytes of each derivation folder (config, realizations, index).
        rrefs: bytes of each realization folder (artifacts and reserved files).
    """

    total: int
    drefs: Mapping[DRef, int] = field(default_factory=dict)
    rrefs: Mapping[RRef, int] = field(default_factory=dict)

    @functools.cached_property
    def _by_dref(self) -> dict[DRef, dict[RRef, int]]:
        out: dict[DRef, dict[RRef, int]] = {}
        for r, n in self.rrefs.items():
            out.setdefault(rref2dref(r), {})[r] = n
        return out

    def __getitem__(self, dref: DRef) -> tuple[int, dict[RRef, int]]:
        return self.drefs[dref], dict(self._by_dref.get(dref, {}))

    def __iter__(self) -> Iterator[DRef]:
        return iter(self.drefs)

    def __len__(self) -> int:
        return len(self.drefs)


def realization_sizes(rrefs: Iterable[RRef], S: StorageSettings | None = None) -> dict[RRef, int]:
    """Bytes of each realization's files and links, as :func:`du` counts them."""
    s = _S(S)
    return {r: tree_bytes(rref2path_(r, s)) for r in rrefs}


def du(S: StorageSettings | None = None) -> DiskUsage:
    """Disk usage of the store, per derivation and per realization (apparent sizes).

    Linear in the number of files of the store.
    """
    s = _S(S)
    drefs: dict[DRef, int] = {}
    rrefs: dict[RRef, int] = {}
    for d in alldrefs(s):
        sizes = realization_sizes(drefrrefs(d, s), s)
        rrefs.update(sizes)
        # The derivation folder: its realizations (just measured) and the rest.
        inside = {os.path.basename(rref2path_(r, s)) for r in sizes}
        with os.scandir(dref2path(d, s)) as it:
            rest = sum(
                tree_bytes(e.path)
                if e.is_dir(follow_symlinks=False)
                else e.stat(follow_symlinks=False).st_size
                for e in it
                if e.name not in inside
            )
        drefs[d] = sum(sizes.values()) + rest
    return DiskUsage(sum(drefs.values()), drefs, rrefs)


def closure_sizes(u: DiskUsage, S: StorageSettings | None = None) -> dict[RRef, int]:
    """Bytes of each realization of ``u`` plus everything it was built from (transitively).

    Exact over shared dependencies, so it walks each realization's closure:
    O(realizations x closure size), quadratic on long chains.
    """
    s = _S(S)
    return {
        r: size + sum(u.rrefs.get(d, 0) for d in rrefdeps([r], s)) for r, size in u.rrefs.items()
    }


@dataclass(frozen=True)
class Artifact:
    """One file or symlink of a realization (the reserved folder left out).

    Attributes:
        path: relative to the realization folder.
        kind: ``"file"``, ``"exec"`` (executable file) or ``"link"``.
        size: bytes (of the link itself, for a link).
        target: a link's target (empty for files).
    """

    path: str
    kind: str
    size: int
    target: str = ""


def rref_files(rref: RRef, S: StorageSettings | None = None) -> list[Artifact]:
    """Every file and symlink of a realization, in sorted path order."""
    root = rref2path(rref, S)
    out: list[Artifact] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and RESERVED in dirnames:
            dirnames.remove(RESERVED)
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for n in filenames + links:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out.append(Artifact(rel, "link", st.st_size, os.readlink(p)))
            else:
                kind = "exec" if st.st_mode & stat.S_IXUSR else "file"
                out.append(Artifact(rel, kind, st.st_size))
    return sorted(out, key=lambda x: x.path)


@dataclass(frozen=True)
class FilesDiff:
    """How the files of two realizations differ (paths relative to each).

    Attributes:
        only_in_a: paths only the first has.
        only_in_b: paths only the second has.
        changed: paths both have with other bytes, kind or link target.
    """

    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    changed: tuple[str, ...]


def files_diff(a: RRef, b: RRef, S: StorageSettings | None = None) -> FilesDiff:
    """Compare the files of two realizations; bytes are hashed only when sizes agree."""
    s = _S(S)
    fa = {x.path: x for x in rref_files(a, s)}
    fb = {x.path: x for x in rref_files(b, s)}
    pa, pb = rref2path(a, s), rref2path(b, s)

    def differ(x: Artifact, y: Artifact) -> bool:
        if (x.kind, x.size, x.target) != (y.kind, y.size, y.target):
            return True
        if x.kind == "link":
            return False
        return hash_file(os.path.join(pa, x.path)) != hash_file(os.path.join(pb, y.path))

    return FilesDiff(
        tuple(sorted(set(fa) - set(fb))),
        tuple(sorted(set(fb) - set(fa))),
        tuple(sorted(k for k in set(fa) & set(fb) if differ(fa[k], fb[k]))),
    )


def find(
    name: str | None = None, newer: float | None = None, S: StorageSettings | None = None
) -> list[RRef]:
    """Realizations by stage name and age (the seed's ``find``).

    Args:
        name: a glob on the stage name (``"hello-*"``); ``None``: any.
        newer: only realizations whose build started less than this many
            seconds ago; ``None``: any age.
        S: the store.

    Returns:
        Matching RRefs, oldest build first (ties by RRef).
    """
    s = _S(S)
    since = time.time() - newer if newer is not None else None
    out: list[tuple[float, RRef]] = []
    for d in alldrefs(s):
        if name is not None and not fnmatch.fnmatchcase(dref_name(d), name):
            continue
        rs = drefrrefs(d, s)
        # Build times from the derivation's facts cache: no file per realization.
        out.extend(
            (t, r)
            for t, r in zip(dref_bstarts(s, d, rs), rs, strict=True)
            if since is None or t >= since
        )
    return [r for _, r in sorted(out)]


KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class ConfigDiff:
    """The difference of two configs, by key path (nested dicts are recursed into).

    Attributes:
        added: key paths only in the second config, with their values.
        removed: key paths only in the first config, with their values.
        changed: key paths in both with different values: ``(old, new)``.
    """

    added: Mapping[KeyPath, Any] = field(default_factory=dict)
    removed: Mapping[KeyPath, Any] = field(default_factory=dict)
    changed: Mapping[KeyPath, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        """Whether the configs are equal."""
        return not (self.added or self.removed or self.changed)

    def __str__(self) -> str:
        lines = [(k, f"- {'.'.join(k)}: {v!r}") for k, v in self.removed.items()]
        lines += [(k, f"+ {'.'.join(k)}: {v!r}") for k, v in self.added.items()]
        lines += [(k, f"~ {'.'.join(k)}: {a!r} -> {b!r}") for k, (a, b) in self.changed.items()]
        return "\n".join(line for _, line in sorted(lines)) or "(same)"


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> ConfigDiff:
    """Compare two config dicts key by key, recursing into nested dicts.

    >>> d = config_diff({"opt": {"lr": 0.1, "n": 3}}, {"opt": {"lr": 0.2}})
    >>> d.changed, d.removed, d.added
    ({('opt', 'lr'): (0.1, 0.2)}, {('opt', 'n'): 3}, {})
    """
    added: dict[KeyPath, Any] = {}
    removed: dict[KeyPath, Any] = {}
    changed: dict[KeyPath, tuple[Any, Any]] = {}

    def go(x: Mapping[str, Any], y: Mapping[str, Any], path: KeyPath) -> None:
        for k in sorted(set(x) | set(y)):
            p = (*path, k)
            if k not in y:
                removed[p] = x[k]
            elif k not in x:
                added[p] = y[k]
            elif isinstance(x[k], dict) and isinstance(y[k], dict):
                go(x[k], y[k], p)
            elif x[k] != y[k] or type(x[k]) is not type(y[k]):
                changed[p] = (x[k], y[k])

    go(a, b, ())
    return ConfigDiff(added, removed, changed)


def ref_config(x: Any, S: StorageSettings | None = None) -> dict[str, Any]:
    """The stored config dict of a DRef or of the derivation an RRef realizes.

    A :class:`Config` or a plain dict is returned as a dict.

    Raises:
        RefError: ``x`` is none of those, or not stored.
    """
    if isinstance(x, Config):
        return config_dict(x)
    if isinstance(x, dict):
        return dict(x)
    if is_rref(x):
        x = rref2dref(RRef(x))
    if is_dref(x):
        return config_dict(drefcfg_(DRef(x), _S(S)))
    raise RefError(f"diff: {x!r} is not a DRef, RRef, config or stage", ref=x)


def refdiff(a: Any, b: Any, S: StorageSettings | None = None) -> ConfigDiff:
    """The config difference of two DRefs/RRefs/configs (stages: see ``pylightnix.diff``)."""
    return config_diff(ref_config(a, S), ref_config(b, S))

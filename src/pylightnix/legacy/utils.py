"""The original's small file, time and hashing helpers (``pylightnix.utils``).

Hashes here are this package's: ``dirhash`` is :func:`pylightnix.hash_tree`
(names, structure and modes included), not the original's contents-only hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from typing import Any

from pylightnix.autostage import source_hash
from pylightnix.errors import ExtraMissingError, StoreError
from pylightnix.hashing import hash_file, hash_tree
from pylightnix.realize.build import dirro, dirrw
from pylightnix.realize.registry import iter_leaves
from pylightnix.refs import is_dref, is_rref
from pylightnix.store.fsops import make_readonly, remove_tree
from pylightnix.store.links import timestring
from pylightnix.types import DRef, Path, RRef

# --- hashing ---------------------------------------------------------------------


def encode(s: str) -> bytes:
    """``s`` as UTF-8 bytes."""
    return s.encode("utf-8")


def datahash(data: Iterable[bytes | tuple[str, bytes]]) -> str:
    """The sha256 hex digest of the concatenated chunks (a ``(hint, bytes)`` pair's hint is
    ignored, as in the original)."""
    h = hashlib.sha256()
    for x in data:
        h.update(x[1] if isinstance(x, tuple) else x)
    return h.hexdigest()


def filehash(path: str) -> str:
    """The sha256 hex digest of a file's bytes."""
    return hash_file(path).hex()


def dirhash(path: str) -> str:
    """The tree hash of a folder (this package's :func:`pylightnix.hash_tree`)."""
    return hash_tree(path)


def dirshash(paths: Iterable[str]) -> str:
    """One sha256 hex digest over the tree hashes of several folders, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(hash_tree(p).encode("ascii"))
    return h.hexdigest()


def dicthash(d: dict[str, Any]) -> str:
    """The sha256 hex digest of a dict's canonical JSON."""
    from pylightnix.config import canonical_json

    return hashlib.sha256(canonical_json(d)).hexdigest()


def pyobjhash(objs: Iterable[Any]) -> str:
    """A stable hash of the sources of functions, classes and modules (not ``hash()``)."""
    xs = list(objs)
    if not xs:
        return hashlib.sha256(b"").hexdigest()[:32]
    return source_hash(xs[0], xs[1:])


# --- files -----------------------------------------------------------------------


def readstr(path: str) -> str:
    """The UTF-8 text of a file."""
    with open(path, encoding="utf-8") as f:
        return f.read()


def writestr(path: str, data: str) -> None:
    """Write UTF-8 text to a file."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)


def tryreadstr(path: str) -> str | None:
    """The text of a file, or ``None`` if it cannot be read."""
    try:
        return readstr(path)
    except (OSError, UnicodeDecodeError):
        return None


def tryreadstr_def(path: str, default: str) -> str:
    """The text of a file, or ``default``."""
    s = tryreadstr(path)
    return default if s is None else s


def maybereadstr(path: str, default: Any = None, mapper: Callable[[str], Any] = lambda x: x) -> Any:
    """``mapper(text of the file)``, or ``default`` if it cannot be read or mapped."""
    s = tryreadstr(path)
    if s is None:
        return default
    try:
        return mapper(s)
    except ValueError:
        return default


def readjson(path: str) -> Any:
    """The parsed JSON of a file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def writejson(path: str, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON to a file."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)


def tryreadjson(path: str) -> Any | None:
    """The parsed JSON of a file, or ``None`` if it cannot be read or parsed."""
    try:
        return readjson(path)
    except (OSError, ValueError):
        return None


def maybereadjson(
    path: str, default: Any = None, mapper: Callable[[Any], Any] = lambda x: x
) -> Any:
    """``mapper(parsed JSON of the file)``, or ``default`` if it cannot be read or parsed."""
    v = tryreadjson(path)
    return default if v is None else mapper(v)


def tryreadjson_def(path: str, default: Any) -> Any:
    """The parsed JSON of a file, or ``default``."""
    v = tryreadjson(path)
    return default if v is None else v


def trycatch(f: Callable[[], Any], default: Any) -> Any:
    """``f()``, or ``default`` if it raises an ``Exception``."""
    try:
        return f()
    except Exception:
        return default


def trywrite(path: str, data: str) -> bool:
    """Write text to a file; tell whether it worked."""
    try:
        writestr(path, data)
    except OSError:
        return False
    return True


def forcelink(src: str, dst: str) -> None:
    """Make ``dst`` a symlink to ``src``, replacing an existing link atomically."""
    tmp = dst + "__"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(src, tmp)
    os.replace(tmp, dst)


def mklogdir(
    tag: str,
    logrootdir: str,
    subdirs: Iterable[str] = (),
    symlinks: bool = True,
    timetag: str | None = None,
) -> Path:
    """Make ``<logrootdir>/<tag>_<time>`` (with ``subdirs``) and a ``_<tag>_latest`` link."""
    tt = timetag or timestring()
    logdir = os.path.join(logrootdir, f"{tag}_{tt}")
    os.makedirs(logdir, exist_ok=False)
    for sd in subdirs:
        os.makedirs(os.path.join(logdir, sd), exist_ok=True)
    if symlinks:
        forcelink(os.path.basename(logdir), os.path.join(logrootdir, f"_{tag}_latest"))
    return Path(logdir)


def dirsize(path: str) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def dirrm(path: str, ignore_not_found: bool = True) -> None:
    """Remove a folder tree (made writable first).

    Raises:
        StoreError: it does not exist and ``ignore_not_found`` is false.
    """
    if not os.path.lexists(path):
        if ignore_not_found:
            return
        raise StoreError(f"dirrm: {path!r} does not exist", path=path)
    remove_tree(path)


def dircp(src: str, dst: str, make_rw: bool = False) -> None:
    """Copy a folder tree (symlinks as links); ``make_rw`` makes the copy writable."""
    shutil.copytree(src, dst, symlinks=True)
    if make_rw:
        dirrw(dst)


def filero(path: str) -> None:
    """Remove the write bits of a file."""
    make_readonly(path)


def filerw(path: str) -> None:
    """Add the owner's write bit to a file."""
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)


def dirchmod(path: str, mode: str) -> None:
    """``'ro'``: make a tree read-only; ``'rw'``: writable again."""
    if mode == "ro":
        dirro(path)
    elif mode == "rw":
        dirrw(path)
    else:
        raise StoreError(f"dirchmod({path!r}, {mode!r}): mode is 'ro' or 'rw'", path=path)


def concat(xss: Iterable[Iterable[Any]]) -> list[Any]:
    """The lists of ``xss`` one after another."""
    return [x for xs in xss for x in xs]


def try_executable(
    name: str, envname: str | None = None, msg: str = "", warn: bool = True
) -> Callable[[], str]:
    """A function returning the path of the tool ``name`` (``$envname`` first).

    The returned function raises :class:`ExtraMissingError` when the tool is missing.
    """
    found = (os.environ.get(envname) if envname else None) or shutil.which(name)

    def get() -> str:
        if not found:
            raise ExtraMissingError(f"executable {name!r} not found on PATH. {msg}".strip())
        return found

    return get


def get_executable(name: str, msg: str = "") -> str:
    """The path of the tool ``name``, or :class:`ExtraMissingError`."""
    return try_executable(name, None, msg)()


# --- walking configs ----------------------------------------------------------------


def traverse_dict(d: dict[str, Any], mut: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """A new dict with every value ``v`` (recursively) replaced by ``mut(key, v)``."""
    return {k: _traverse(v, k, mut) for k, v in d.items()}


def traverse_list(xs: list[Any], mut: Callable[[Any, Any], Any]) -> list[Any]:
    """A new list with every item replaced by ``mut(index, item)`` (recursively)."""
    return [_traverse(v, i, mut) for i, v in enumerate(xs)]


def traverse_tuple(xs: tuple[Any, ...], mut: Callable[[Any, Any], Any]) -> tuple[Any, ...]:
    """Like :func:`traverse_list` for a tuple."""
    return tuple(traverse_list(list(xs), mut))


def _traverse(v: Any, k: Any, mut: Callable[[Any, Any], Any]) -> Any:
    if isinstance(v, dict):
        return traverse_dict(v, mut)
    if isinstance(v, list):
        return traverse_list(v, mut)
    if isinstance(v, tuple):
        return traverse_tuple(v, mut)
    return mut(k, v)


def scanref_dict(d: dict[str, Any]) -> tuple[list[DRef], list[RRef]]:
    """The DRefs and RRefs inside a dict (recursively)."""
    return scan_refs(d)


def scanref_list(xs: list[Any]) -> tuple[list[DRef], list[RRef]]:
    """The DRefs and RRefs inside a list (recursively)."""
    return scan_refs(xs)


def scan_refs(x: Any) -> tuple[list[DRef], list[RRef]]:
    """The DRefs and RRefs inside nested lists, tuples and dicts, in order."""
    leaves = list(iter_leaves(x))
    return [DRef(v) for v in leaves if is_dref(v)], [RRef(v) for v in leaves if is_rref(v)]

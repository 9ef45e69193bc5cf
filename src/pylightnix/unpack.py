"""Safe extraction of untrusted archives (``.tar[.gz|.bz2|.xz]``, ``.zip``, ``.gz``).

Every member is checked *before* anything is written: a member whose path is
absolute or climbs out with ``..``, a link whose target lands outside the
destination, a member written through a link of the same archive, and device
or FIFO files are refused with :class:`UnsafeArchiveError` naming the member.
Tar extraction then also runs under :mod:`tarfile`'s ``'data'`` filter, which
re-checks every path against the real destination while extracting. Corrupt
or truncated archives raise :class:`ArchiveError`; so does an archive that
holds one path twice (which member wins would be a guess, and a file could be
written through an earlier link of the same name). On any error the top-level
entries the call created in the destination are removed again.

Size limits (:class:`UnpackLimits`): an archive may unpack to at most
``max_size`` bytes in all (default 1 TiB: far above any dataset a single
store holds, it only stops runaway expansion), and, once it has unpacked more
than :data:`RATIO_FLOOR` (64 MiB), to at most ``max_ratio`` times its own
size (default 1000: text and tabular data compress 3-20x and even very
redundant data stays well under 1000x, while decompression bombs reach
1,000,000x and more). The declared sizes of tar and zip members are checked
before anything is written, and the bytes actually written are counted too.
Explicit arguments beat ``$PYLIGHTNIX_UNPACK_MAX_SIZE`` /
``$PYLIGHTNIX_UNPACK_MAX_RATIO``, which beat the defaults; ``0`` means no
limit. Exceeding one raises :class:`UnpackLimitError`.

This is a foundation module: standard library only, no store imports.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Protocol

from pylightnix.errors import ArchiveError, OptionError, UnpackLimitError, UnsafeArchiveError

KINDS = ("tar", "zip", "gz")
"""Archive kinds :func:`safe_extract` knows; tar covers every compression."""

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
_KIND_ALIASES = {
    "tar": "tar",
    "tar.gz": "tar",
    "tgz": "tar",
    "tar.bz2": "tar",
    "tbz2": "tar",
    "tar.xz": "tar",
    "txz": "tar",
    "zip": "zip",
    "gz": "gz",
}
_COPY_BLOCK = 1 << 20

MAX_SIZE_ENV = "PYLIGHTNIX_UNPACK_MAX_SIZE"
MAX_RATIO_ENV = "PYLIGHTNIX_UNPACK_MAX_RATIO"
DEFAULT_MAX_SIZE = 1 << 40
"""Default limit on the bytes one archive unpacks to: 1 TiB."""
DEFAULT_MAX_RATIO = 1000.0
"""Default limit on unpacked bytes per archive byte (checked above :data:`RATIO_FLOOR`)."""
RATIO_FLOOR = 64 << 20
"""Unpacked bytes below which the ratio is not checked: a small archive of a
few zero-filled files may have a huge ratio and harms nobody."""


@dataclass(frozen=True)
class UnpackLimits:
    """How much one archive may unpack to (``0``: no limit).

    Attributes:
        max_size: total bytes of the files it unpacks to.
        max_ratio: unpacked bytes per byte of the archive, checked once more
            than :data:`RATIO_FLOOR` bytes were unpacked.
    """

    max_size: int = DEFAULT_MAX_SIZE
    max_ratio: float = DEFAULT_MAX_RATIO


def _env_number(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not v >= 0 or v == float("inf"):
        raise OptionError(
            f"${name}={raw!r} is not a non-negative number (0 means no limit)",
            option=name,
            value=raw,
        )
    return v


def unpack_limits(max_size: int | None = None, max_ratio: float | None = None) -> UnpackLimits:
    """The limits in force: explicit arguments, else the environment, else the defaults.

    >>> unpack_limits(max_size=10).max_size, unpack_limits(max_ratio=0).max_ratio
    (10, 0)

    Raises:
        OptionError: a limit (argument or environment variable) is negative or not a number.
    """
    for opt, v in (("max_size", max_size), ("max_ratio", max_ratio)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0):
            raise OptionError(
                f"{opt}={v!r}: expected a non-negative number (0 means no limit)",
                option=opt,
                value=v,
            )
    if max_size is None:
        env = _env_number(MAX_SIZE_ENV)
        max_size = DEFAULT_MAX_SIZE if env is None else int(env)
    if max_ratio is None:
        env = _env_number(MAX_RATIO_ENV)
        max_ratio = DEFAULT_MAX_RATIO if env is None else env
    return UnpackLimits(int(max_size), max_ratio)


def _size_text(n: float) -> str:
    """Bytes for people.

    >>> _size_text(1536), _size_text(1 << 40)
    ('1.5 KiB', '1.0 TiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class _Budget:
    """Counts the bytes an archive unpacks to and refuses them past the limits."""

    def __init__(self, name: str, archive_bytes: int, limits: UnpackLimits) -> None:
        self.name, self.archive_bytes, self.limits = name, archive_bytes, limits

    def check(self, total: int) -> None:
        lim = self.limits
        if lim.max_size and total > lim.max_size:
            raise UnpackLimitError(
                f"archive {self.name!r} unpacks to more than {_size_text(lim.max_size)} "
                f"(max_size={lim.max_size}): refusing to extract it (nothing was kept); if you "
                f"trust it, raise max_size= or ${MAX_SIZE_ENV} (0: no limit)",
                archive=self.name,
                limit="max_size",
                value=lim.max_size,
            )
        if lim.max_ratio and total > RATIO_FLOOR and total > lim.max_ratio * self.archive_bytes:
            raise UnpackLimitError(
                f"archive {self.name!r} ({_size_text(self.archive_bytes)}) unpacks to more than "
                f"{lim.max_ratio:g} times its size ({_size_text(total)} so far, "
                f"max_ratio={lim.max_ratio:g}): refusing to extract it (nothing was kept); if "
                f"you trust it, raise max_ratio= or ${MAX_RATIO_ENV} (0: no limit)",
                archive=self.name,
                limit="max_ratio",
                value=lim.max_ratio,
            )


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy_counted(src: _Reader, out: IO[bytes], budget: _Budget, done: int) -> int:
    """Copy ``src`` to ``out``; return ``done`` plus the bytes copied, checked on the way."""
    while True:
        block = src.read(_COPY_BLOCK)
        if not block:
            return done
        done += len(block)
        budget.check(done)
        out.write(block)


_CORRUPT = (
    tarfile.TarError,
    zipfile.BadZipFile,
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
)


def archive_kind(filename: str) -> str | None:
    """The archive kind a file name suggests, or ``None`` when it suggests none.

    >>> archive_kind("hello-2.10.tar.gz"), archive_kind("data.zip"), archive_kind("a.csv.gz")
    ('tar', 'zip', 'gz')
    >>> archive_kind("notes.txt") is None
    True
    """
    low = filename.lower()
    if low.endswith(_TAR_SUFFIXES):
        return "tar"
    if low.endswith(".zip"):
        return "zip"
    if low.endswith(".gz"):
        return "gz"
    return None


def _sniff_kind(archive: str) -> str | None:
    """Tell the kind of ``archive`` from its contents (for names without a suffix)."""
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, *_CORRUPT):
        pass
    with open(archive, "rb") as f:
        if f.read(2) == b"\x1f\x8b":
            return "gz"
    return None


def member_target(name: str, archive: str = "") -> str:
    """The normalized relative path an archive member name asks for.

    Raises :class:`UnsafeArchiveError` when the name is absolute or climbs
    out of the destination.

    >>> member_target("./hello-2.10//src/hello.c")
    'hello-2.10/src/hello.c'
    >>> try:
    ...     member_target("../evil")
    ... except UnsafeArchiveError as e:
    ...     print(e.member)
    ../evil
    """
    # Backslashes count as separators: a name like '..\\x' is an attack aimed at
    # Windows tools and has no honest use in an archive.
    unified = name.replace("\\", "/")
    why = None
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        why = "has an absolute path"
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        why = "climbs out of the destination with '..'"
    if why is not None:
        raise _unsafe(archive, name, why)
    return "/".join(parts)


def _unsafe(archive: str, member: str, why: str) -> UnsafeArchiveError:
    where = f"archive {archive!r}: member" if archive else "archive member"
    return UnsafeArchiveError(
        f"{where} {member!r} {why}: refusing to extract the archive (nothing was extracted)",
        archive=archive,
        member=member,
    )


def _link_stays_inside(member: str, target: str) -> bool:
    """Tell whether a symlink at ``member`` pointing at ``target`` stays in the root."""
    if target.startswith("/") or not target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    return resolved != ".." and not resolved.startswith("../") and not resolved.startswith("/")


class _Checker:
    """Checks members in archive order; remembers links so nothing is written through one."""

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self.links: set[str] = set()
        self.seen: set[str] = set()
        self.dirs: set[str] = set()

    def unsafe(self, member: str, why: str) -> UnsafeArchiveError:
        return _unsafe(self.archive, member, why)

    def path(self, name: str) -> str:
        rel = member_target(name, self.archive)
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.links:
                raise self.unsafe(name, f"is written through the link {'/'.join(parts[:i])!r}")
        return rel

    def symlink(self, name: str, rel: str, target: str) -> None:
        if not _link_stays_inside(rel, target.replace("\\", "/")):
            raise self.unsafe(name, f"is a link to {target!r}, outside the destination")
        self.links.add(rel)

    def once(self, name: str, rel: str, is_dir: bool) -> None:
        """Refuse a second member of the same path (a folder listed twice is fine)."""
        if rel in self.seen and not (is_dir and rel in self.dirs):
            raise ArchiveError(
                f"archive {self.archive!r} holds {name!r} twice: refusing to guess which one "
                "is meant",
                archive=self.archive,
            )
        self.seen.add(rel)
        if is_dir:
            self.dirs.add(rel)

    def hardlink(self, name: str, target: str) -> None:
        try:
            trel = member_target(target, self.archive)
        except UnsafeArchiveError:
            raise self.unsafe(
                name, f"is a hard link to {target!r}, outside the destination"
            ) from None
        if trel not in self.seen or trel in self.links:
            raise self.unsafe(
                name, f"is a hard link to {target!r}, which is not a file earlier in the archive"
            )


def _check_tar(
    tf: tarfile.TarFile, archive: str, budget: _Budget
) -> tuple[list[tuple[tarfile.TarInfo, str]], _Checker]:
    ck = _Checker(archive)
    out: list[tuple[tarfile.TarInfo, str]] = []
    total = 0
    for m in tf.getmembers():
        rel = ck.path(m.name)
        if (
            m.ischr()
            or m.isblk()
            or m.isfifo()
            or not (m.isreg() or m.isdir() or m.issym() or m.islnk())
        ):
            raise ck.unsafe(m.name, "is a device, FIFO or other special file")
        if m.issym():
            ck.symlink(m.name, rel, m.linkname)
        elif m.islnk():
            ck.hardlink(m.name, m.linkname)
        if rel:
            ck.once(m.name, rel, m.isdir())
        if m.isreg():
            # tarfile writes exactly the declared size of a member.
            total += m.size
            budget.check(total)
        out.append((m, rel))
    return out, ck


def _check_links_resolve_inside(
    archive: str, dest: str, members: list[tuple[str, str]], ck: _Checker
) -> None:
    """Resolve every extracted symlink for real: each must stay inside ``dest``.

    The lexical check of each link target misses chains: with ``a -> .``,
    the target ``a/../x`` looks like ``x`` but resolves to ``dest/../x``.
    """
    root = os.path.realpath(dest)
    for name, rel in members:
        if rel not in ck.links:
            continue
        real = os.path.realpath(os.path.join(dest, *rel.split("/")))
        if real != root and not real.startswith(root + os.sep):
            raise ck.unsafe(name, f"is a link resolving to {real!r}, outside the destination")


def _extract_tar(path: str, dest: str, archive: str, budget: _Budget) -> list[str]:
    with tarfile.open(path, "r:*") as tf:
        checked, ck = _check_tar(tf, archive, budget)
        try:
            tf.extractall(dest, members=[m for m, _ in checked], filter="data")
        except tarfile.FilterError as e:
            member = getattr(e, "tarinfo", None)
            mname = member.name if member is not None else "?"
            raise UnsafeArchiveError(
                f"archive {archive!r}: member {mname!r} was refused while extracting ({e}): "
                "refusing to extract this archive",
                archive=archive,
                member=mname,
            ) from e
        _check_links_resolve_inside(archive, dest, [(m.name, rel) for m, rel in checked], ck)
    return [rel for _, rel in checked if rel]


def _zip_mode(info: zipfile.ZipInfo) -> int:
    # Unix modes live in the high 16 bits of external_attr when made on Unix.
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(path: str, dest: str, archive: str, budget: _Budget) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        ck = _Checker(archive)
        plan: list[tuple[zipfile.ZipInfo, str, int]] = []
        declared = 0
        for info in zf.infolist():
            rel = ck.path(info.filename)
            mode = _zip_mode(info)
            ftype = stat.S_IFMT(mode)
            if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
                raise ck.unsafe(info.filename, "is a device, FIFO or other special file")
            if ftype == stat.S_IFLNK:
                target = zf.read(info).decode("utf-8", "surrogateescape")
                ck.symlink(info.filename, rel, target)
            if rel:
                ck.once(info.filename, rel, False)
            declared += info.file_size
            budget.check(declared)
            plan.append((info, rel, mode))
        done = 0
        for info, rel, mode in plan:
            if not rel:
                continue
            path = os.path.join(dest, *rel.split("/"))
            if info.is_dir() or stat.S_ISDIR(mode):
                os.makedirs(path, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode("utf-8", "surrogateescape"), path)
                continue
            exe = 0o111 if mode & stat.S_IXUSR else 0
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644 | exe)
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                done = _copy_counted(src, out, budget, done)
        _check_links_resolve_inside(archive, dest, [(i.filename, r) for i, r, _ in plan], ck)
    return [rel for _, rel, _ in plan if rel]


def _gz_output_name(path: str, archive: str) -> str:
    base = os.path.basename(path)
    name = base[:-3] if base.lower().endswith(".gz") else base + ".out"
    if not name or name in (".", ".."):
        raise ArchiveError(
            f"cannot name the file unpacked from {archive!r}: rename the archive to '<name>.gz'",
            archive=archive,
        )
    return name


def _extract_gz(path: str, dest: str, archive: str, budget: _Budget) -> list[str]:
    name = _gz_output_name(path, archive)
    out_path = os.path.join(dest, name)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
        _copy_counted(src, out, budget, 0)
    return [name]


def _remove_new(dest: str, before: Iterable[str]) -> None:
    old = set(before)
    try:
        names = os.listdir(dest)
    except FileNotFoundError:
        return
    for n in names:
        if n in old:
            continue
        p = os.path.join(dest, n)
        if os.path.isdir(p) and not os.path.islink(p):
            for dirpath, dirnames, _ in os.walk(p):
                for d in dirnames:
                    dp = os.path.join(dirpath, d)
                    if not os.path.islink(dp):
                        os.chmod(dp, 0o700)
            os.chmod(p, 0o700)
            shutil.rmtree(p)
        else:
            os.unlink(p)


def safe_extract(
    archive: str,
    dest: str,
    *,
    kind: str | None = None,
    max_size: int | None = None,
    max_ratio: float | None = None,
    name: str | None = None,
) -> list[str]:
    """Extract ``archive`` into the folder ``dest``, refusing anything unsafe.

    Args:
        archive: path of a ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``,
            ``.tar.xz``, ``.zip`` or ``.gz`` (a single compressed file).
        dest: the destination folder (created if missing).
        kind: ``"tar"`` (any compression), ``"zip"`` or ``"gz"`` (aliases such
            as ``"tar.gz"`` accepted); default: from the file name, then from
            the contents.
        max_size: most bytes the archive may unpack to (module docs; ``0``: no
            limit; default ``$PYLIGHTNIX_UNPACK_MAX_SIZE``, else 1 TiB).
        max_ratio: most unpacked bytes per archive byte above 64 MiB unpacked
            (default ``$PYLIGHTNIX_UNPACK_MAX_RATIO``, else 1000).
        name: what errors call the archive (e.g. the URL or the user's file
            when ``archive`` is a private temporary copy); default ``archive``.
            A ``.gz`` file unpacks to the name of ``archive`` without ``.gz``.

    Returns:
        The relative paths (``/``-separated) of the members extracted, in
        archive order.

    Raises:
        UnsafeArchiveError: a member would escape ``dest`` or is a special
            file; nothing is extracted.
        UnpackLimitError: the archive unpacks to more than the limits allow;
            nothing is kept.
        ArchiveError: the archive is corrupt, truncated, holds a path twice,
            or is of an unknown kind.
        OptionError: a limit is negative or not a number.
    """
    shown = archive if name is None else name
    limits = unpack_limits(max_size, max_ratio)
    if not os.path.isfile(archive):
        raise ArchiveError(f"archive {shown!r} does not exist or is not a file", archive=shown)
    if kind is not None:
        k = _KIND_ALIASES.get(kind.lower().lstrip("."))
        if k is None:
            raise ArchiveError(
                f"unknown archive kind {kind!r} for {shown!r}: use one of {', '.join(KINDS)}",
                archive=shown,
            )
    else:
        k = archive_kind(archive) or _sniff_kind(archive)
        if k is None:
            raise ArchiveError(
                f"cannot tell what kind of archive {shown!r} is: name it with a known "
                f"suffix or pass kind= (one of {', '.join(KINDS)})",
                archive=shown,
            )
    os.makedirs(dest, exist_ok=True)
    before = os.listdir(dest)
    extract = {"tar": _extract_tar, "zip": _extract_zip, "gz": _extract_gz}[k]
    budget = _Budget(shown, os.path.getsize(archive), limits)
    try:
        return extract(archive, dest, shown, budget)
    except (UnsafeArchiveError, ArchiveError):
        _remove_new(dest, before)
        raise
    except _CORRUPT as e:
        _remove_new(dest, before)
        raise ArchiveError(
            f"archive {shown!r} is corrupt or truncated ({type(e).__name__}: {e}): "
            "get a good copy of it",
            archive=shown,
        ) from e
    except OSError as e:
        _remove_new(dest, before)
        raise ArchiveError(f"cannot extract {shown!r} into {dest!r}: {e}", archive=shown) from e

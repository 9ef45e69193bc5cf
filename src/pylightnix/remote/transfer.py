"""Push closures to a remote cache and pull them back (docs/remote-format.md).

Push writes, per realization, the archive first, then its context-index
marker, then its claim; claims go out dependencies first, so every claim a
reader sees has its archive and its dependencies' claims complete behind it.
Pull never trusts the remote: archives are checked against their claims'
hash and size, unpacked into the store's temporary space, re-hashed, and
inserted by the store's own closure insertion (``store/archive.py``), which
makes nothing visible unless everything checks out.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pylightnix.errors import (
    ArchiveError,
    IntegrityError,
    OptionError,
    RefError,
    RemoteError,
    UnsafeArchiveError,
)
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, current_hook
from pylightnix.refs import dref_dirname, maybe_parse_rref, parse_rref, rref2dref
from pylightnix.remote.backend import Remote, open_remote
from pylightnix.remote.keys import check_trusted, load_secret_key, parse_trusted_keys, sign_claim
from pylightnix.remote.layout import (
    COMPRESSIONS,
    FORMAT,
    FORMAT_FILE,
    Claim,
    claim_json,
    claim_name,
    claim_path,
    config_path,
    drv_dir,
    index_path,
    parse_claim,
)
from pylightnix.store.archive import (
    MANIFEST,
    closure_order,
    closure_plan,
    insert_staged_closure,
    staged_manifest,
    write_realization_archive,
)
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.layout import CONFIG_FILE, CONTEXT_FILE, RESERVED, check_store, rref2path_
from pylightnix.store.locks import gc_shared
from pylightnix.store.query import dref_exists, store_dref2path
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.store.verify import read_context_file
from pylightnix.types import DRef, RRef

JOBS = 8
"""Transfers in flight at once (threads: I/O, zlib and hashlib release the GIL)."""
COMPRESSION = "auto"
GZIP_LEVEL = 1
"""Measured (bench/remote.py, docs/remote-format.md): zlib level 1 compresses text-like
artifacts ~3x at ~5x the speed of level 6, for 10% larger archives; on incompressible
data (weights, images, compressed files) any level runs at ~16-20 MB/s for nothing."""
SAMPLE_BYTES = 1 << 20
"""``"auto"`` compresses a sample of this many bytes (the starts of the files) first."""
_SAMPLE_PER_FILE = 64 << 10
_MIN_RATIO = 1.1
_BLOCK = 1 << 20
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class TransferResult:
    """What a push or pull did.

    Attributes:
        direction: ``"push"`` or ``"pull"``.
        remote: the remote's URL.
        targets: the RRefs asked for.
        transferred: realizations sent (push) or received (pull), dependencies first.
        skipped: realizations of the closure the other side already had.
        configs: derivation configs sent or received.
        nbytes: archive bytes moved.
        seconds: wall time.
    """

    direction: Literal["push", "pull"]
    remote: str
    targets: tuple[RRef, ...]
    transferred: tuple[RRef, ...]
    skipped: tuple[RRef, ...]
    configs: tuple[DRef, ...]
    nbytes: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "remote": self.remote,
            "targets": list(self.targets),
            "transferred": list(self.transferred),
            "skipped": list(self.skipped),
            "configs": list(self.configs),
            "bytes": self.nbytes,
            "seconds": round(self.seconds, 3),
        }


class _Progress:
    """Byte progress of one transfer, reported as ``ProgressEvent("transfer")`` from any thread."""

    def __init__(self, direction: str, remote: Remote, total: int = 0) -> None:
        self.hook = current_hook()
        self.lock = threading.Lock()
        self.done = 0
        self.total = total
        self.t0 = time.monotonic()
        self.name = remote.url
        self.extra = {"direction": direction}

    def __call__(self, n: int) -> None:
        if self.hook is None:
            return
        with self.lock:
            self.done += n
            dt = time.monotonic() - self.t0
            self.hook(
                ProgressEvent(
                    "transfer",
                    name=self.name,
                    done=self.done,
                    total=self.total,
                    elapsed=dt,
                    extra={**self.extra, "rate": self.done / dt if dt > 0 else 0.0},
                )
            )


def _pmap(f: Callable[[T], U], xs: Sequence[T]) -> list[U]:
    """``[f(x) for x in xs]`` on up to ``JOBS`` threads; the first error is raised."""
    jobs = JOBS
    if len(xs) <= 1 or jobs <= 1:
        return [f(x) for x in xs]
    with ThreadPoolExecutor(max_workers=min(jobs, len(xs))) as ex:
        return list(ex.map(f, xs))


def _source(R: Remote) -> str:
    return f"remote {R.url}"


def check_format(R: Remote, *, create: bool) -> None:
    """Check the remote's format marker; with ``create``, write it on a new remote.

    Raises:
        RemoteError: another format, no marker (and not ``create``), or unreachable.
    """
    data = R.read(FORMAT_FILE)
    if data is None:
        if create:
            R.write(FORMAT_FILE, json.dumps({"format": FORMAT}).encode() + b"\n")
            return
        raise RemoteError(
            f"remote {R.url} is not a pylightnix cache (it has no {FORMAT_FILE}): "
            "push to it first, or check the URL",
            url=R.url,
        )
    try:
        fmt = json.loads(data).get("format")
    except (ValueError, AttributeError):
        fmt = None
    if fmt != FORMAT:
        raise RemoteError(
            f"remote {R.url} has format {fmt!r}, this pylightnix reads {FORMAT!r}: "
            "use a pylightnix of that version, or another remote",
            url=R.url,
        )


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.n += len(b)
        return int(self.f.write(b))

    def flush(self) -> None:
        self.f.flush()


def _levels(rrefs: list[RRef], claims: dict[RRef, Claim]) -> list[list[RRef]]:
    """``rrefs`` (dependencies first) grouped so that each group's deps are in earlier ones."""
    level: dict[RRef, int] = {}
    for r in rrefs:
        level[r] = 1 + max((level.get(d, -1) for d in claims[r].deps()), default=-1)
    out: list[list[RRef]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for r in rrefs:
        out[level[r]].append(r)
    return out


def push(
    refs: Iterable[RRef],
    remote: Remote | str | os.PathLike[str],
    *,
    S: StorageSettings | None = None,
    sign_with: str | os.PathLike[str] | None = None,
    compression: str = COMPRESSION,
) -> TransferResult:
    """Send the closure of ``refs`` to ``remote``, skipping what it already holds.

    The closure is every realization the RRefs' contexts name, transitively,
    and the configs of their derivations. One listing per derivation tells
    what the remote has; archives are packed and uploaded in parallel.

    Args:
        refs: realizations of the local store.
        remote: a :class:`Remote` or a URL / folder path (see :func:`open_remote`).
        S: the local store (default: the current one).
        sign_with: a secret key file (:func:`generate_key`); each claim is signed.
        compression: ``"auto"`` (the default: gzip level 1 for each realization
            whose sample compresses by 10% or more, else none), ``"gzip"`` or ``"none"``.

    Raises:
        RefError: an RRef is malformed or not in the store (or its closure is incomplete).
        RemoteError: the remote is read-only, of another format, or unreachable.
        OptionError: a bad ``sign_with`` key file or ``compression``.
    """
    t0 = time.monotonic()
    s = fsS(S)
    check_store(s)
    R = open_remote(remote)
    if compression != "auto" and compression not in COMPRESSIONS:
        raise OptionError(
            f"compression={compression!r}: expected 'auto' or one of {sorted(COMPRESSIONS)}",
            option="compression",
            value=compression,
        )
    key = load_secret_key(sign_with) if sign_with is not None else None
    R.check_writable()
    with gc_shared(s):
        targets, order, drefs = closure_plan(refs, s)
        check_format(R, create=True)
        listed = _listings(R, drefs)
        new_configs = [d for d in drefs if CONFIG_FILE not in listed[d]]
        send = [r for r in order if claim_name(r) not in listed[rref2dref(r)]]
        sending = set(send)
        skipped = [r for r in order if r not in sending]
        # Configs first: a claim is never seen before its derivation's config.
        R.write_many(
            [
                (config_path(d), _read(os.path.join(store_dref2path(d, s), CONFIG_FILE)))
                for d in new_configs
            ]
        )
        progress = _Progress("push", R)
        tmp = mkdtemp_in(s.tmpdir, "push")
        try:
            claims = dict(
                zip(
                    send,
                    _pmap(
                        lambda r: _push_archive(
                            r, s, R, tmp, compression, progress, bool(listed[rref2dref(r)])
                        ),
                        send,
                    ),
                    strict=True,
                )
            )
        finally:
            remove_tree(tmp)
        if key is not None:
            claims = {
                r: Claim(c.rref, c.context, c.archive, c.size, c.compression, (sign_claim(c, key),))
                for r, c in claims.items()
            }
        for group in _levels(send, claims):
            # A claim goes out only once every claim it depends on is out (a reader
            # never sees a claim whose closure is partial), and after its index
            # marker: a marker without its claim is ignored, while a claim present
            # means its marker is present too (push skips claimed realizations).
            cs = [claims[r] for r in group]
            R.write_many([(index_path(c.rref, context_hash(c.context)), b"") for c in cs])
            R.write_many([(claim_path(c.rref), claim_json(c)) for c in cs])
    return TransferResult(
        "push",
        R.url,
        tuple(targets),
        tuple(send),
        tuple(skipped),
        tuple(new_configs),
        sum(c.size for c in claims.values()),
        time.monotonic() - t0,
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _push_archive(
    r: RRef,
    S: StorageSettings,
    R: Remote,
    tmp: str,
    compression: str,
    progress: _Progress,
    maybe_there: bool,
) -> Claim:
    """Pack ``r`` into a local temporary archive and upload it; its claim.

    With ``maybe_there`` (the remote has a folder for its derivation, so an
    earlier push may have been interrupted), an archive already there is not
    uploaded again."""
    local = os.path.join(tmp, parse_rref(r)[0])
    if compression == "auto":
        compression = "gzip" if compressible(rref2path_(r, S)) else "none"
    with open(local, "wb") as f:
        w = _HashingWriter(f)
        level = GZIP_LEVEL if compression == "gzip" else None
        write_realization_archive(r, S, w, compresslevel=level)
    ctx = read_context_file(os.path.join(rref2path_(r, S), RESERVED, CONTEXT_FILE))
    c = Claim(r, ctx, w.h.hexdigest(), w.n, compression)
    try:
        if not (maybe_there and R.exists(c.archive_path)):
            R.upload(local, c.archive_path, progress)
        else:
            progress(w.n)
    finally:
        os.unlink(local)
    return c


def compressible(folder: str) -> bool:
    """Whether gzip is worth it: the starts of the files (up to ``SAMPLE_BYTES``)
    compress by at least 10% at level 1. Small folders are always compressed."""
    sample = bytearray()
    for d, dirs, files in os.walk(folder):
        dirs.sort()
        for n in sorted(files):
            p = os.path.join(d, n)
            if os.path.islink(p):
                continue
            with open(p, "rb") as f:
                sample += f.read(_SAMPLE_PER_FILE)
            if len(sample) >= SAMPLE_BYTES:
                break
        if len(sample) >= SAMPLE_BYTES:
            break
    if len(sample) < 4096:
        return True
    return len(sample) >= _MIN_RATIO * len(zlib.compress(bytes(sample), GZIP_LEVEL))


def _listings(R: Remote, drefs: list[DRef]) -> dict[DRef, set[str]]:
    """What the remote holds in each derivation's folder (config, claims).

    Many derivations: one listing of ``drv/`` first, and only the folders that
    exist are listed (a first push of 1,000 stages costs one listing, not 1,000).
    """
    present = set(R.listdir("drv")) if len(drefs) > 16 else None
    ask = [d for d in drefs if present is None or dref_dirname(d) in present]
    got = dict(zip(ask, _pmap(lambda d: set(R.listdir(drv_dir(d))), ask), strict=True))
    return {d: got.get(d, set()) for d in drefs}


def _check_refs(refs: Iterable[RRef]) -> list[RRef]:
    out: list[RRef] = []
    for r in [refs] if isinstance(refs, str) else refs:
        if maybe_parse_rref(r) is None:
            raise RefError(f"{r!r} is not an RRef (expected rref:<hash>-<hash>-<name>)", ref=str(r))
        out.append(RRef(r))
    if not out:
        raise RefError("no RRefs given: name at least one realization to pull", ref="")
    return out


def pull(
    refs: Iterable[RRef],
    remote: Remote | str | os.PathLike[str],
    *,
    S: StorageSettings | None = None,
    trusted_keys: Iterable[str] | None = None,
) -> TransferResult:
    """Fetch the closure of ``refs`` from ``remote`` into the local store.

    Realizations already stored locally are skipped. Everything fetched is
    checked against its claim (archive hash and size), unpacked into the
    store's temporary space and re-hashed before anything becomes visible;
    on any error the local store is left exactly as it was.

    Args:
        refs: realizations the remote holds.
        remote: a :class:`Remote` or a URL / folder path.
        S: the local store (default: the current one).
        trusted_keys: public keys ``name:base64``; when given, every claim
            pulled must carry a valid signature by one of them.

    Raises:
        RefError: a malformed RRef.
        RemoteError: the remote is unreachable, not a cache, or lacks a realization.
        IntegrityError: a claim, config or archive is malformed, truncated,
            corrupt or forged (``.ref`` names it; the message names the remote).
        TrustError: with ``trusted_keys``, a claim is unsigned or not signed by a trusted key.
    """
    t0 = time.monotonic()
    s = fsS(S)
    check_store(s)
    R = open_remote(remote)
    trusted = parse_trusted_keys(trusted_keys) if trusted_keys is not None else None
    targets = _check_refs(refs)
    with gc_shared(s):
        here = {r for r in targets if os.path.isdir(rref2path_(r, s))}
        want = [r for r in targets if r not in here]
        claims: dict[RRef, Claim] = {}
        if want:
            check_format(R, create=False)
        src = _source(R)
        frontier = sorted(set(want))
        while frontier:
            datas = R.read_many([claim_path(r) for r in frontier])
            nxt: set[RRef] = set()
            for r, data in zip(frontier, datas, strict=True):
                if data is None:
                    what = "" if r in targets else ", a dependency of what was asked,"
                    raise RemoteError(
                        f"remote {R.url} holds no realization {r}{what} (push it there first)",
                        url=R.url,
                    )
                c = parse_claim(data, r, src)
                if trusted is not None:
                    check_trusted(c, trusted, src)
                claims[r] = c
                nxt.update(
                    d for d in c.deps() if d not in claims and not os.path.isdir(rref2path_(d, s))
                )
            frontier = sorted(nxt - set(claims))
        order = _dependency_order(claims)
        need = sorted({rref2dref(r) for r in order if not dref_exists(rref2dref(r), s)})
        nbytes = 0
        if order:
            progress = _Progress("pull", R, sum(c.size for c in claims.values()))
            stage = mkdtemp_in(s.tmpdir, "pull")
            try:
                _stage_configs(R, need, stage)
                groups: dict[DRef, list[Claim]] = {}
                for r in order:
                    groups.setdefault(rref2dref(r), []).append(claims[r])
                _pmap(lambda g: _fetch_group(R, g, stage, progress), list(groups.values()))
                with open(os.path.join(stage, MANIFEST), "wb") as f:
                    f.write(staged_manifest(targets, order, need))
                insert_staged_closure(stage, s, src, targets)
            finally:
                remove_tree(stage)
            nbytes = sum(c.size for c in claims.values())
    return TransferResult(
        "pull",
        R.url,
        tuple(targets),
        tuple(order),
        tuple(sorted(here)),
        tuple(need),
        nbytes,
        time.monotonic() - t0,
    )


def _dependency_order(claims: dict[RRef, Claim]) -> list[RRef]:
    return closure_order(claims, lambda r: [d for d in claims[r].deps() if d in claims])


def _stage_configs(R: Remote, drefs: list[DRef], stage: str) -> None:
    for d, data in zip(drefs, R.read_many([config_path(d) for d in drefs]), strict=True):
        if data is None:
            raise RemoteError(
                f"remote {R.url} lacks the config of {d} (an interrupted push? push again)",
                url=R.url,
            )
        os.makedirs(os.path.join(stage, dref_dirname(d)), exist_ok=True)
        with open(os.path.join(stage, dref_dirname(d), CONFIG_FILE), "wb") as f:
            f.write(data)


def _fetch_group(R: Remote, cs: list[Claim], stage: str, progress: _Progress) -> None:
    """Fetch the archives of realizations of one derivation, one after the other (they
    unpack into the same staged folder)."""
    for c in cs:
        _fetch_archive(R, c, stage, progress)


def _fetch_archive(R: Remote, c: Claim, stage: str, progress: _Progress) -> None:
    """Download ``c``'s archive, check it against the claim, unpack it into the staged layout."""
    src = _source(R)
    rhash = parse_rref(c.rref)[0]

    def bad(why: str) -> IntegrityError:
        return IntegrityError(
            f"{src}: the archive {c.archive_path} of {c.rref} {why}; nothing was pulled",
            ref=c.rref,
            expected=c.archive,
        )

    dst = os.path.join(stage, dref_dirname(c.dref))
    os.makedirs(dst, exist_ok=True)
    before = set(os.listdir(dst))
    # A folder remote's archive is read where it lies (no copy): it is hashed first,
    # and whatever it unpacks to is re-hashed against the RRef before insertion.
    local = R.local_path(c.archive_path) or os.path.join(stage, f".a-{rhash}")
    if R.is_local:
        if not os.path.isfile(local):
            raise bad("is missing behind its claim (an interrupted push? push it again)")
        progress(os.path.getsize(local))
    elif not R.download(c.archive_path, local, progress):
        raise bad("is missing behind its claim (an interrupted push? push it again)")
    try:
        size = os.path.getsize(local)
        if size != c.size:
            raise bad(f"has {size} bytes, its claim says {c.size} (truncated or replaced)")
        h = hashlib.sha256()
        with open(local, "rb") as f:
            while b := f.read(_BLOCK):
                h.update(b)
        if h.hexdigest() != c.archive:
            raise bad(f"has sha256 {h.hexdigest()}, its claim says {c.archive} (corrupt)")
        from pylightnix.unpack import safe_extract

        safe_extract(local, dst, kind="tar")
    except (ArchiveError, UnsafeArchiveError) as e:
        raise bad(f"cannot be unpacked safely ({e})") from None
    finally:
        if not R.is_local:
            os.unlink(local)
    top = os.path.join(dst, rhash)
    new = sorted(set(os.listdir(dst)) - before)
    if new != [rhash] or os.path.islink(top) or not os.path.isdir(top):
        raise bad(f"holds {new}, not the one folder {rhash}")
    try:
        ctx = read_context_file(os.path.join(top, RESERVED, CONTEXT_FILE))
    except (OSError, ValueError) as e:
        raise bad(f"holds an unreadable context ({e})") from None
    if {k: sorted(v) for k, v in ctx.items()} != c.context:
        raise bad("holds another context than its claim (forged)")

"""Stages that bring outside files into the store: ``fetchurl``, ``fetchlocal``, ``unpackref``.

A fetch is content-addressed: its config names the expected ``sha256`` (or
``sha1``) and the realizer refuses bytes of any other hash *before* anything
enters the store. Bytes go to a private temporary file inside the build's own
temporary folder, so two processes fetching the same URL never mix bytes and
a failed download leaves nothing behind. Archives are unpacked with
:func:`pylightnix.unpack.safe_extract`, which refuses members escaping the
output folder.

``mode`` (as in the seed):

* ``"unpack,remove"`` (default): unpack the archive into the output, drop it;
* ``"unpack"``: unpack it and keep the archive next to its contents;
* ``"as-is"``: keep the downloaded file as it is.

Stall rule (like curl's ``--speed-limit``/``--speed-time``): a download whose
average rate over a window of ``speed_time`` seconds stays below
``speed_limit`` bytes per second fails with a :class:`FetchError` naming the
URL and the rate, so a server trickling bytes never keeps a realize (and its
build lock) forever. Defaults: 1 KiB/s over 60 s. They are not part of the
config (a slow network does not change what is downloaded, so not the DRef):
give ``speed_limit=``/``speed_time=`` to :func:`fetchurl`, or set
``$PYLIGHTNIX_FETCH_SPEED_LIMIT`` / ``$PYLIGHTNIX_FETCH_SPEED_TIME`` (read when
the build runs; arguments win); a limit of ``0`` turns the rule off.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from pylightnix.config import selfref
from pylightnix.errors import (
    ConfigError,
    FetchError,
    HashMismatchError,
    OptionError,
    UnsafeArchiveError,
)
from pylightnix.hashing import hash_file
from pylightnix.progress import ProgressEvent, current_hook, report
from pylightnix.realize.build import (
    Build,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
)
from pylightnix.realize.matchers import match_only
from pylightnix.realize.registry import Registry, mkdrv, registry_first
from pylightnix.refs import MAX_NAME_LEN, dref_name
from pylightnix.store.fsops import mkdtemp_in
from pylightnix.types import DRef, RefPath
from pylightnix.unpack import archive_kind, member_target, safe_extract

MODES = ("unpack,remove", "unpack", "as-is")
"""The values of a fetch stage's ``mode``."""

SCHEMES = ("http", "https", "file")
"""URL schemes :func:`fetchurl` downloads from."""

BLOCK = 1 << 20
"""Bytes read, hashed and written per step of a download."""

STDERR_AFTER = 1.0
"""Seconds after which a download without a progress hook shows a stderr line."""

LOG_EVERY = 10.0
"""Seconds between progress lines when stderr is not a terminal (a build log)."""

TIMEOUT = 60.0
"""Seconds without a byte from the server before a download is abandoned."""

SPEED_LIMIT_ENV = "PYLIGHTNIX_FETCH_SPEED_LIMIT"
SPEED_TIME_ENV = "PYLIGHTNIX_FETCH_SPEED_TIME"
SPEED_LIMIT = 1024.0
"""Default minimum download rate, in bytes per second (curl's ``--speed-limit``)."""
SPEED_TIME = 60.0
"""Default window, in seconds, over which the rate is measured (curl's ``--speed-time``)."""

_HEX = {"sha256": 64, "sha1": 40}


@dataclass(frozen=True)
class StallRule:
    """When a download counts as stalled.

    Attributes:
        speed_limit: the minimum average rate, in bytes per second (``0``: no rule).
        speed_time: the window, in seconds, the rate is averaged over.
    """

    speed_limit: float = SPEED_LIMIT
    speed_time: float = SPEED_TIME


def _rule_value(name: str, raw: Any, *, positive: bool) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(raw, bool) or not math.isfinite(v) or v < 0 or (positive and v == 0):
        want = "a positive number of seconds" if positive else "a number >= 0 (0: no rule)"
        raise OptionError(f"{name}={raw!r}: expected {want}", option=name, value=raw)
    return v


def stall_rule(speed_limit: float | None = None, speed_time: float | None = None) -> StallRule:
    """The stall rule in force: explicit arguments, else the environment, else the defaults.

    >>> stall_rule(speed_limit=10, speed_time=2)
    StallRule(speed_limit=10.0, speed_time=2.0)

    Raises:
        OptionError: a value (argument or environment variable) is not a
            number >= 0 (the window: > 0).
    """
    out: list[float] = []
    for arg, opt, env, default, positive in (
        (speed_limit, "speed_limit", SPEED_LIMIT_ENV, SPEED_LIMIT, False),
        (speed_time, "speed_time", SPEED_TIME_ENV, SPEED_TIME, True),
    ):
        if arg is not None:
            out.append(_rule_value(opt, arg, positive=positive))
        elif os.environ.get(env, "").strip():
            out.append(_rule_value("$" + env, os.environ[env].strip(), positive=positive))
        else:
            out.append(default)
    return StallRule(out[0], out[1])


def _check_hash(sha256: str | None, sha1: str | None, who: str) -> tuple[str, str]:
    """The (algorithm, lowercase hex digest) a fetch stage was given; exactly one is required."""
    given = [(a, h) for a, h in (("sha256", sha256), ("sha1", sha1)) if h is not None]
    if len(given) != 1:
        raise ConfigError(
            f"{who} needs exactly one of sha256= or sha1= (got {len(given)}): the hash is "
            "how the download is checked; compute it with `sha256sum <file>`",
            key_path=("sha256",),
        )
    algo, h = given[0]
    if not isinstance(h, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{_HEX[algo]}}}", h):
        raise ConfigError(
            f"{who}: {algo}={h!r} is not {_HEX[algo]} hexadecimal characters",
            key_path=(algo,),
        )
    return algo, h.lower()


def _check_mode(mode: str, who: str) -> None:
    if mode not in MODES:
        raise ConfigError(
            f"{who}: mode={mode!r} is not one of {', '.join(map(repr, MODES))}",
            key_path=("mode",),
        )


def _check_filename(filename: str, who: str) -> str:
    try:
        plain = isinstance(filename, str) and member_target(filename) == filename
    except UnsafeArchiveError:
        plain = False
    if not plain or "/" in filename or "\\" in filename:
        raise ConfigError(
            f"{who}: filename={filename!r} must be a plain file name (no folders, no '..')",
            key_path=("filename",),
        )
    return filename


def name_from_filename(filename: str) -> str:
    """A valid stage name made from a file name (archive suffixes dropped).

    >>> name_from_filename("hello-2.10.tar.gz")
    'hello-2_10'
    >>> name_from_filename("data set.zip")
    'data_set'
    >>> len(name_from_filename("x" * 300 + ".csv"))  # cut to refs.MAX_NAME_LEN
    128
    """
    base = filename
    for suf in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip", ".gz"):
        if base.lower().endswith(suf):
            base = base[: -len(suf)]
            break
    name = re.sub(r"[^A-Za-z0-9_-]", "_", base).strip("_")[:MAX_NAME_LEN]
    return name or "fetched"


def url_filename(url: str) -> str:
    """The file name a URL's path ends with (``'download'`` when it has none).

    >>> url_filename("http://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz?x=1")
    'hello-2.10.tar.gz'
    """
    path = urllib.parse.urlsplit(url).path
    base = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    return base if base not in ("", ".", "..") else "download"


def _fetch_config(
    who: str,
    source: dict[str, str],
    *,
    sha256: str | None,
    sha1: str | None,
    mode: str,
    name: str | None,
    filename: str,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The config of a fetch stage: ``source`` plus the checked hash, mode and file name."""
    algo, digest = _check_hash(sha256, sha1, who)
    _check_mode(mode, who)
    fname = _check_filename(filename, who)
    config: dict[str, Any] = {
        **kwargs,
        "name": name or name_from_filename(fname),
        **source,
        algo: digest,
        "mode": mode,
        "filename": fname,
    }
    if "unpack" not in mode:
        # As the original: a file kept as-is is promised, so mklens(...).out_path
        # reaches it (and the build checks it is there).
        config.setdefault("out_path", [selfref, fname])
    return config


@registry_first
def fetchurl(
    url: str,
    *,
    sha256: str | None = None,
    sha1: str | None = None,
    mode: str = "unpack,remove",
    name: str | None = None,
    filename: str | None = None,
    r: Registry | None = None,
    speed_limit: float | None = None,
    speed_time: float | None = None,
    **kwargs: Any,
) -> DRef:
    """Register a download of ``url`` checked against its hash (the seed's ``fetchurl``).

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL.
        sha256: the expected sha256 of the file (or give ``sha1``).
        sha1: the expected sha1, for old sources that publish only that.
        mode: ``"unpack,remove"``, ``"unpack"`` or ``"as-is"`` (module doc).
        name: the stage name (default: from the file name).
        filename: the name of the downloaded file (default: from the URL).
        r: the registry (passed by ``instantiate``).
        speed_limit: fail a download slower than this many bytes per second
            over ``speed_time`` (module docs; default
            ``$PYLIGHTNIX_FETCH_SPEED_LIMIT``, else 1024; ``0``: never). Not
            part of the config: it does not change the DRef.
        speed_time: the window of the stall rule, in seconds (default
            ``$PYLIGHTNIX_FETCH_SPEED_TIME``, else 60).
        **kwargs: more config entries (they change the DRef, not the download).

    Returns:
        The DRef of the download.

    Raises:
        ConfigError: a missing or malformed hash, an unknown mode or scheme.
        OptionError: ``speed_limit`` or ``speed_time`` is not a valid number.
    """
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in SCHEMES:
        raise ConfigError(
            f"fetchurl: url={url!r} is not an {'/'.join(SCHEMES)} URL", key_path=("url",)
        )
    config = _fetch_config(
        f"fetchurl({url!r})",
        {"url": url},
        sha256=sha256,
        sha1=sha1,
        mode=mode,
        name=name,
        filename=filename or url_filename(url),
        kwargs=kwargs,
    )
    stall_rule(speed_limit, speed_time)  # refuse bad values now, not at build time
    realizer: Any = _fetchurl_realize
    if speed_limit is not None or speed_time is not None:
        # Bound to the realizer, not put in the config: the DRef stays the same.
        realizer = functools.partial(
            _fetchurl_realize, speed_limit=speed_limit, speed_time=speed_time
        )
    return mkdrv(config, match_only(), build_wrapper(realizer), r=r)


@registry_first
def fetchlocal(
    path: str | None = None,
    *,
    envname: str | None = None,
    sha256: str | None = None,
    sha1: str | None = None,
    mode: str = "unpack,remove",
    name: str | None = None,
    filename: str | None = None,
    r: Registry | None = None,
    **kwargs: Any,
) -> DRef:
    """Register a copy of a local file checked against its hash (the seed's ``fetchlocal``).

    Args:
        path: the file to copy; or
        envname: the name of an environment variable holding the path, read at
            build time (the DRef then does not depend on where the file is).
        sha256: the expected sha256 (or give ``sha1``).
        sha1: the expected sha1.
        mode: ``"unpack,remove"``, ``"unpack"`` or ``"as-is"``.
        name: the stage name (default: from the file name).
        filename: the name of the copied file (default: the source's name).
        r: the registry (passed by ``instantiate``).
        **kwargs: more config entries.

    Returns:
        The DRef of the copy.

    Raises:
        ConfigError: neither or both of ``path``/``envname``, a bad hash or mode.
    """
    who = f"fetchlocal({path or envname!r})"
    if (path is None) == (envname is None):
        raise ConfigError(f"{who} needs exactly one of path= or envname=", key_path=("path",))
    if filename is None and path is None:
        raise ConfigError(
            f"{who}: with envname= also give filename= (the path is only known at build time)",
            key_path=("filename",),
        )
    src: dict[str, str] = {"path": os.path.abspath(path)} if path else {"envname": str(envname)}
    config = _fetch_config(
        who,
        src,
        sha256=sha256,
        sha1=sha1,
        mode=mode,
        name=name,
        filename=filename or os.path.basename(str(path)),
        kwargs=kwargs,
    )
    return mkdrv(config, match_only(), build_wrapper(_fetchlocal_realize), r=r)


@registry_first
def unpackref(
    src: RefPath,
    *,
    name: str = "unpack",
    kind: str | None = None,
    sha256: str | None = None,
    r: Registry | None = None,
) -> DRef:
    """Register the unpacking of an archive that is a file of another stage.

    (Not named ``unpack``: :mod:`pylightnix.unpack` is the extraction module.)

    Args:
        src: a RefPath ``[dref, "file.tar.gz"]`` to the archive.
        name: the stage name.
        kind: ``"tar"``, ``"zip"`` or ``"gz"`` (default: from the file name).
        sha256: optionally, the expected hash of the archive.
        r: the registry (passed by ``instantiate``).

    Returns:
        The DRef of the unpacked tree.
    """
    config: dict[str, Any] = {"name": name, "src": src}
    if kind is not None:
        config["kind"] = kind
    if sha256 is not None:
        config["sha256"] = _check_hash(sha256, None, f"unpackref({src!r})")[1]
    return mkdrv(config, match_only(), build_wrapper(_unpack_realize), r=r)


class _Readable(Protocol):
    def readinto1(self, buf: bytearray, /) -> int | None: ...


class _StallWatch:
    """Raises :class:`FetchError` when the average rate over a window falls below the rule."""

    def __init__(self, url: str, rule: StallRule) -> None:
        self.url, self.rule = url, rule
        self.t0 = time.monotonic()
        self.done0 = self.done = 0

    def __call__(self, done: int) -> None:
        self.done = done
        if not self.rule.speed_limit:
            return
        now = time.monotonic()
        window = now - self.t0
        if window < self.rule.speed_time:
            return
        rate = (done - self.done0) / window
        if rate < self.rule.speed_limit:
            raise self.stalled(rate, window)
        self.t0, self.done0 = now, done

    def silent(self) -> FetchError:
        """The error for a read that waited a whole window without a byte."""
        window = max(time.monotonic() - self.t0, 1e-9)
        return self.stalled((self.done - self.done0) / window, window)

    def stalled(self, rate: float, window: float) -> FetchError:
        r = self.rule
        return FetchError(
            f"download of {self.url} stalled: {rate:.1f} B/s over the last {window:.1f} s, "
            f"below the minimum of {r.speed_limit:g} B/s over {r.speed_time:g} s: try again "
            f"or use a mirror (or relax the rule: speed_limit=/speed_time= of fetchurl, "
            f"${SPEED_LIMIT_ENV}/${SPEED_TIME_ENV}; 0 turns it off)",
            url=self.url,
            rate=rate,
        )


class _Progress:
    """Throttled byte progress of one download: the hook, or stderr when slow.

    On a terminal the stderr line is rewritten in place; otherwise (e.g. the
    build log the engine captures) a full line is written every
    :data:`LOG_EVERY` seconds, so logs stay readable.
    """

    def __init__(self, b: Build, url: str, total: int) -> None:
        self.b, self.url, self.total = b, url, total
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_line = 0.0
        self.printed = False
        self.hook = current_hook() is not None

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.2:
            return
        self.last = now
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.hook:
            report(
                ProgressEvent(
                    "download",
                    dref=self.b.dref,
                    name=str(dref_name(self.b.dref)),
                    done=done,
                    total=self.total,
                    elapsed=elapsed,
                    extra={"url": self.url, "rate": rate},
                )
            )
        elif elapsed > STDERR_AFTER or (final and self.printed):
            self._line(done, rate, now, final)

    def _line(self, done: int, rate: float, now: float, final: bool) -> None:
        of = f" / {self.total / 2**20:.1f} MiB" if self.total else ""
        mib = f"{done / 2**20:.1f} MiB{of} at {rate / 2**20:.1f} MiB/s"
        text = f"fetch {dref_name(self.b.dref)}: {mib}"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + text + ("\n" if final else ""))
        elif final or now - self.last_line >= LOG_EVERY:
            sys.stderr.write(text + "\n")
            self.last_line = now
        self.printed = True
        sys.stderr.flush()


def _stream(
    src: _Readable,
    dst: str,
    algo: str,
    progress: _Progress,
    watch: _StallWatch | None = None,
) -> tuple[str, int]:
    """Copy ``src`` into the new file ``dst``, hashing on the way; return (hexdigest, bytes).

    Reads return as soon as some bytes arrive (``readinto1``), so ``watch``
    sees a trickle as it comes instead of waiting for a full block.
    """
    h = hashlib.new(algo)
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    done = 0
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        while True:
            n = src.readinto1(buf)
            if not n:
                break
            h.update(view[:n])
            out.write(view[:n])
            done += n
            progress(done)
            if watch is not None:
                watch(done)
    progress(done, final=True)
    return h.hexdigest(), done


def _download_dir(b: Build) -> str:
    # The build's private temporary folder holds the output folder; a sibling
    # folder there is private to this build and removed with it.
    return mkdtemp_in(os.path.dirname(build_outpath(b)), "download")


def _expected(c: Any) -> tuple[str, str]:
    return ("sha256", c.sha256) if hasattr(c, "sha256") else ("sha1", c.sha1)


def _finish(b: Build, src: str, path: str, mode: str, fname: str) -> None:
    """Put the checked file ``path`` into the output according to ``mode``."""
    out = build_outpath(b)
    if mode == "as-is":
        os.rename(path, os.path.join(out, fname))
        return
    # The kind from the name ``fname``, else from the contents; errors name the source.
    safe_extract(path, out, name=src)
    if mode == "unpack":
        dst = os.path.join(out, fname)
        if os.path.lexists(dst):
            raise FetchError(
                f"{src}: the archive holds a member named {fname!r}, like the archive itself; "
                "use mode='unpack,remove' or another filename=",
                url=src,
            )
        os.rename(path, dst)
    else:
        os.unlink(path)


def _verify(src: str, algo: str, expected: str, actual: str, path: str) -> None:
    if actual != expected:
        os.unlink(path)
        raise HashMismatchError(
            f"{algo} mismatch for {src}: expected {expected}, got {actual} (the file differs "
            f"from the one the stage names; if the new file is right, put {algo}='{actual}' "
            "in the stage; nothing was stored)",
            url=src,
            algo=algo,
            expected=expected,
            actual=actual,
        )


def content_length(value: str | None) -> int:
    """The size a ``Content-Length`` header announces; ``0`` (unknown) unless a count >= 0.

    >>> content_length("42"), content_length("-1"), content_length(None), content_length("x")
    (42, 0, 0, 0)
    """
    try:
        n = int((value or "").strip())
    except ValueError:
        return 0
    return max(n, 0)


def _download(
    url: str, dst: str, algo: str, progress: _Progress, rule: StallRule | None = None
) -> tuple[str, int]:
    """Download ``url`` into the new file ``dst``; return (hexdigest, bytes).

    Raises:
        FetchError: HTTP errors, network errors, short reads and stalls
            (``rule``), naming the URL.
    """
    rule = rule or stall_rule()
    req = urllib.request.Request(url, headers={"User-Agent": "pylightnix"})  # noqa: S310
    # A socket silent for a whole window is a stall too: no read may wait longer.
    timeout = min(TIMEOUT, rule.speed_time) if rule.speed_limit else TIMEOUT
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            total = content_length(resp.headers.get("Content-Length"))
            progress.total = total
            watch = _StallWatch(url, rule)
            try:
                digest, n = _stream(resp, dst, algo, progress, watch)
            except TimeoutError:
                if not rule.speed_limit:
                    raise
                raise watch.silent() from None
    except urllib.error.HTTPError as e:
        e.close()  # the error carries the open response; drop the connection now
        raise FetchError(
            f"cannot download {url}: the server answered HTTP {e.code} {e.reason} "
            "(check the URL, or use a mirror)",
            url=url,
            status=e.code,
        ) from e
    except urllib.error.URLError as e:
        raise FetchError(
            f"cannot download {url}: {e.reason} (check the URL and the network)", url=url
        ) from e
    except (OSError, ValueError, http.client.HTTPException) as e:
        if isinstance(e, FetchError):
            raise
        raise FetchError(
            f"download of {url} failed: {type(e).__name__}: {e} (try again)", url=url
        ) from e
    if total and n != total:
        raise FetchError(
            f"download of {url} stopped after {n} of {total} bytes: try again", url=url
        )
    return digest, n


def _fetchurl_realize(
    b: Build, *, speed_limit: float | None = None, speed_time: float | None = None
) -> None:
    c = build_cattrs(b)
    algo, expected = _expected(c)
    path = os.path.join(_download_dir(b), c.filename)
    rule = stall_rule(speed_limit, speed_time)
    digest, _ = _download(c.url, path, algo, _Progress(b, c.url, 0), rule)
    _verify(c.url, algo, expected, digest, path)
    _finish(b, c.url, path, c.mode, c.filename)


def _fetchlocal_realize(b: Build) -> None:
    c = build_cattrs(b)
    algo, expected = _expected(c)
    src = getattr(c, "path", None)
    if src is None:
        src = os.environ.get(c.envname)
        if not src:
            raise FetchError(
                f"fetchlocal: the environment variable {c.envname} is not set: set it to "
                "the path of the file",
                url=c.envname,
            )
    path = os.path.join(_download_dir(b), c.filename)
    try:
        f = open(src, "rb")  # noqa: SIM115
    except OSError as e:
        raise FetchError(f"cannot read {src!r}: {e.strerror}", url=src) from e
    with f:
        digest, _ = _stream(f, path, algo, _Progress(b, src, os.fstat(f.fileno()).st_size))
    _verify(src, algo, expected, digest, path)
    _finish(b, src, path, c.mode, c.filename)


def _unpack_realize(b: Build) -> None:
    c = build_cattrs(b)
    path = build_path(b, c.src)
    if hasattr(c, "sha256"):
        actual = hash_file(path).hex()
        if actual != c.sha256:
            raise HashMismatchError(
                f"sha256 mismatch for {path}: expected {c.sha256}, got {actual}",
                url=path,
                algo="sha256",
                expected=c.sha256,
                actual=actual,
            )
    safe_extract(path, build_outpath(b), kind=getattr(c, "kind", None) or archive_kind(path))

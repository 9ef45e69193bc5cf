"""Remotes: a handful of primitives over an fsspec filesystem.

Everything the cache does (``transfer.py``, ``substitute.py``) is written once
over :class:`Remote`'s primitives -- ``read``, ``write``, ``upload``,
``download``, ``exists``, ``listdir``, ``delete`` -- so any fsspec backend
works: a local folder, S3, HTTP(S) (read-only), SFTP, GCS...

A :class:`Remote` holds only its URL and storage options and opens the
filesystem on first use, so it pickles (it crosses to Dask workers).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pylightnix.errors import ExtraMissingError, RemoteError
from pylightnix.store.fsops import unique_suffix

_READ_ONLY = frozenset({"http", "https"})
_CHUNK = 1 << 20
_S3_PART = 8 << 20
_S3_PARTS_AT_ONCE = 4
"""s3fs keeps ``max_concurrency`` (10) parts of a transfer in memory, 50 MiB each by default
(a 1 GiB upload peaked at 1.07 GiB RSS); 4 parts of 8 MiB measured 146 MiB peak RSS for
both 256 MiB and 768 MiB files: memory flat in artifact size."""

ByteCallback = Callable[[int], None]
"""Called with the number of bytes moved since the last call."""


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as e:
        raise ExtraMissingError(
            "remote caches need fsspec: pip install 'pylightnix-ng[remote]'"
            " (in a checkout: pip install -e '.[remote]')",
            extra="remote",
        ) from e
    return fsspec


class Remote:
    """A remote cache at ``url``, opened through fsspec with ``storage_options``.

    Paths given to the primitives are relative, ``/``-separated, and never
    start with ``/``. Writes to a local folder go through a unique temporary
    name and a rename, so a reader never sees a half-written file; object
    stores (S3, GCS) replace an object atomically by themselves.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""

    def __repr__(self) -> str:
        return f"Remote({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Remote)
            and self.url == other.url
            and self.storage_options == other.storage_options
        )

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    @property
    def protocol(self) -> str:
        """The URL scheme (``file`` for a plain path)."""
        head, sep, _ = self.url.partition("://")
        return head.lower() if sep else "file"

    @property
    def read_only(self) -> bool:
        """Whether this kind of remote cannot be written (HTTP)."""
        return self.protocol in _READ_ONLY

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def _open(self) -> tuple[Any, str]:
        if self._fs is None:
            fsspec = _fsspec()
            try:
                fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except ImportError as e:
                raise ExtraMissingError(
                    f"remote {self.url}: its filesystem needs a package that is missing ({e}): "
                    "pip install 'pylightnix-ng[remote]'"
                    " (in a checkout: pip install -e '.[remote]')",
                    extra="remote",
                ) from e
            except Exception as e:
                raise self._failed("open", "", e) from e
            self._fs, self._root = fs, str(root).rstrip("/")
        return self._fs, self._root

    def local_path(self, rel: str) -> str | None:
        """The local file of ``rel`` for a folder remote, else ``None``."""
        return self.path(rel) if self.is_local else None

    def path(self, rel: str) -> str:
        """The backend path of the relative path ``rel``."""
        _, root = self._open()
        return f"{root}/{rel}" if rel else root

    def _failed(self, op: str, rel: str, e: BaseException) -> RemoteError:
        what = f" {rel}" if rel else ""
        return RemoteError(
            f"remote {self.url}: {op}{what} failed: {type(e).__name__}: {e} "
            "(check the URL, the network and the credentials)",
            url=self.url,
        )

    def check_writable(self) -> None:
        """Refuse a read-only remote with an error saying where to push instead.

        Raises:
            RemoteError: the remote is read-only.
        """
        if self.read_only:
            raise RemoteError(
                f"remote {self.url} is read-only ({self.protocol}:// serves a pushed cache): "
                "push to the folder or bucket it serves instead",
                url=self.url,
            )

    # ---- primitives --------------------------------------------------------------

    def read(self, rel: str) -> bytes | None:
        """The bytes of ``rel``, or ``None`` if the remote does not hold it."""
        fs, _ = self._open()
        try:
            return bytes(fs.cat_file(self.path(rel)))
        except FileNotFoundError:
            return None
        except Exception as e:
            raise self._failed("reading", rel, e) from e

    def read_many(self, rels: Sequence[str]) -> list[bytes | None]:
        """:meth:`read` of each of ``rels``, as one batch (concurrent requests on
        network filesystems); ``None`` for each object the remote does not hold."""
        if self.is_local or len(rels) <= 1:
            return [self.read(r) for r in rels]
        fs, _ = self._open()
        paths = [self.path(r) for r in rels]
        try:
            got = fs.cat(paths, on_error="return")
        except Exception as e:
            raise self._failed("reading", f"{len(rels)} objects", e) from e
        out: list[bytes | None] = []
        for rel, p in zip(rels, paths, strict=True):
            v = got.get(p)
            if isinstance(v, FileNotFoundError) or v is None:
                out.append(None)
            elif isinstance(v, BaseException):
                raise self._failed("reading", rel, v) from v
            else:
                out.append(bytes(v))
        return out

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`write` of each ``(rel, data)``, as one batch (concurrent requests on
        network filesystems; no order among them)."""
        self.check_writable()
        if self.is_local or len(items) <= 1:
            for rel, data in items:
                self.write(rel, data)
            return
        fs, _ = self._open()
        try:
            fs.pipe({self.path(rel): data for rel, data in items})
        except Exception as e:
            raise self._failed("writing", f"{len(items)} objects", e) from e

    def exists(self, rel: str) -> bool:
        """Whether the remote holds ``rel``."""
        fs, _ = self._open()
        try:
            return bool(fs.exists(self.path(rel)))
        except Exception as e:
            raise self._failed("checking", rel, e) from e

    def listdir(self, rel: str) -> list[str]:
        """The sorted names in the folder ``rel`` (``[]`` if it does not exist).

        Leftovers of interrupted local writes (``.tmp-*``) are not listed.
        """
        fs, _ = self._open()
        p = self.path(rel)
        try:
            # Object-store filesystems cache listings; another process may have pushed.
            fs.invalidate_cache(p)
            entries = fs.ls(p, detail=False)
        except FileNotFoundError:
            return []
        except Exception as e:
            raise self._failed("listing", rel, e) from e
        names = {str(x).rstrip("/").rsplit("/", 1)[-1] for x in entries}
        return sorted(n for n in names if n and not n.startswith(".tmp-"))

    def write(self, rel: str, data: bytes) -> None:
        """Store ``data`` as ``rel``, replacing it; readers see all of it or the old object."""
        self.check_writable()
        fs, _ = self._open()
        p = self.path(rel)
        try:
            if self.is_local:
                _local_replace(p, lambda f: f.write(data))
            else:
                fs.pipe_file(p, data)
        except Exception as e:
            raise self._failed("writing", rel, e) from e

    def upload(self, local: str, rel: str, progress: ByteCallback | None = None) -> None:
        """Copy the local file ``local`` to ``rel``, atomically as :meth:`write`."""
        self.check_writable()
        fs, _ = self._open()
        p = self.path(rel)
        try:
            if self.is_local:

                def fill(dst: Any) -> None:
                    with open(local, "rb") as src:
                        _copy(src, dst, progress)

                _local_replace(p, fill)
            else:
                fs.put_file(local, p, callback=_callback(progress), **self._part_kwargs())
        except Exception as e:
            raise self._failed("uploading", rel, e) from e

    def download(self, rel: str, local: str, progress: ByteCallback | None = None) -> bool:
        """Copy ``rel`` to the local file ``local``; ``False`` if the remote lacks it."""
        fs, _ = self._open()
        p = self.path(rel)
        try:
            if self.is_local:
                with open(p, "rb") as src, open(local, "wb") as dst:
                    _copy(src, dst, progress)
            else:
                fs.get_file(p, local, callback=_callback(progress), **self._part_kwargs())
        except FileNotFoundError:
            _unlink_quietly(local)
            return False
        except Exception as e:
            raise self._failed("downloading", rel, e) from e
        return True

    def _part_kwargs(self) -> dict[str, Any]:
        return (
            {"chunksize": _S3_PART, "max_concurrency": _S3_PARTS_AT_ONCE}
            if self.protocol in ("s3", "s3a")
            else {}
        )

    def delete(self, rel: str) -> None:
        """Remove ``rel`` if it exists."""
        self.check_writable()
        fs, _ = self._open()
        try:
            fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass
        except Exception as e:
            raise self._failed("deleting", rel, e) from e


def _local_replace(path: str, fill: Callable[[Any], object]) -> None:
    """Write a local file through a unique temporary name and a rename (all or nothing)."""
    d, name = os.path.split(path)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".tmp-{unique_suffix()}-{name}")
    try:
        with open(tmp, "wb") as f:
            fill(f)
        os.replace(tmp, path)
    finally:
        _unlink_quietly(tmp)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _copy(src: Any, dst: Any, progress: ByteCallback | None) -> None:
    if progress is None:
        shutil.copyfileobj(src, dst, _CHUNK)
        return
    while True:
        b = src.read(_CHUNK)
        if not b:
            return
        dst.write(b)
        progress(len(b))


def _callback(progress: ByteCallback | None) -> Any:
    from fsspec.callbacks import Callback, NoOpCallback

    if progress is None:
        return NoOpCallback()

    cb: ByteCallback = progress

    class _Bytes(Callback):  # type: ignore[misc]
        def relative_update(self, inc: int = 1) -> None:
            cb(inc)

        def call(self, *args: Any, **kwargs: Any) -> None:
            pass

    return _Bytes()


def open_remote(url: str | os.PathLike[str] | Remote, **storage_options: Any) -> Remote:
    """The remote cache at ``url``; nothing is contacted until it is used.

    Args:
        url: a plain folder path or ``file://`` URL, ``s3://bucket/prefix``,
            ``http(s)://...`` (read-only: a pushed cache served by any static web
            server with folder listings), or any other fsspec URL (``sftp://``,
            ``gs://``...). A :class:`Remote` is returned as it is.
        storage_options: handed to fsspec unchanged (e.g. S3's
            ``endpoint_url``, ``key``, ``secret``).

    Raises:
        RemoteError: ``url`` is empty or not a string/path.
    """
    if isinstance(url, Remote):
        if storage_options:
            return Remote(url.url, {**url.storage_options, **storage_options})
        return url
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        raise RemoteError(
            f"open_remote({url!r}): expected a folder path or a URL such as "
            "s3://bucket/prefix or https://host/cache",
            url=str(url),
        )
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    elif url.startswith("file://"):
        url = os.path.abspath(url[len("file://") :])
    return Remote(url, storage_options)

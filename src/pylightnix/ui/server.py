"""The web view's HTTP server: routes, the Host check, security headers.

Built on the standard library's ``ThreadingHTTPServer`` (one thread per
request). Only ``GET`` and ``HEAD`` are answered: the view never changes
the store.

Safety, request by request:

* the ``Host`` header must name the address the server serves (a page of
  another site whose name was made to resolve to 127.0.0.1, "DNS
  rebinding", sends its own name and is refused);
* paths into a realization are resolved by :mod:`pylightnix.ui.files` and
  never leave it;
* every answer says ``X-Content-Type-Options: nosniff``; pages carry a
  Content-Security-Policy that allows only this server's scripts; files are
  served as an allow-listed image type or as a download.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files as package_files
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pylightnix.errors import PylightnixError, RefError, RequestError, StoreError
from pylightnix.refs import is_dref, is_rref
from pylightnix.store.layout import check_store
from pylightnix.store.query import dref2path_checked, rref2path
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, RRef
from pylightnix.ui import api
from pylightnix.ui.files import served_as
from pylightnix.ui.pages import render_page

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Content-Security-Policy of pages: scripts only from this server, none inline."""

FILE_CSP = "default-src 'none'; sandbox"
"""Content-Security-Policy of served files and JSON: nothing runs, even if opened as a page."""

SIZE_TTL = 60.0
"""Seconds the store size is reused before it is measured again (``?refresh=1`` forces it)."""

KEPT = 64
"""How many records the server keeps for reuse (runs of stages, the stage index)."""

T = TypeVar("T")

_STATIC: dict[str, tuple[str, str]] = {
    "app.js": ("pylightnix.ui", "static/app.js"),
    "app.css": ("pylightnix.ui", "static/app.css"),
    "plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` header values a server bound to ``host:port`` answers (lower case).

    >>> sorted(allowed_hosts("127.0.0.1", 8080))
    ['127.0.0.1:8080', 'localhost:8080']
    """
    names = {host.lower()}
    if is_loopback(host):
        names.add("localhost")
    else:
        # Bound to an outside address (on purpose, with --host): the names the machine has.
        names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    out = {f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names}
    if port == 80:
        out.update(f"[{n}]" if ":" in n else n for n in names)
    return frozenset(out)


@dataclass
class Reply:
    """One answer: status, body, content type and extra headers."""

    status: int
    body: bytes
    ctype: str
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # a file to stream instead of ``body``


def _json(obj: Any, status: int = 200) -> Reply:
    body = json.dumps(obj, sort_keys=True, default=str).encode()
    return Reply(status, body, "application/json")


class UIServer(ThreadingHTTPServer):
    """The web view of one store (see :func:`make_server`)."""

    daemon_threads = True
    S: StorageSettings
    hosts: frozenset[str]
    quiet: bool

    def __init__(self, addr: tuple[str, int], S: StorageSettings, *, quiet: bool) -> None:
        self.S = S
        self.quiet = quiet
        self._size: tuple[float, dict[str, Any]] | None = None
        self._size_lock = threading.Lock()
        self._kept: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        super().__init__(addr, _Handler)
        self.hosts = allowed_hosts(addr[0], self.server_address[1])

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = str(self.server_address[0])
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen, if 0 was asked)."""
        return int(self.server_address[1])

    def runs_json(self, what: str) -> bytes:
        """The runs record of ``what`` as JSON, reused while its derivations are unchanged."""
        key = api.runs_key(what, self.S)
        return self._reused(f"runs:{what}", key, lambda: _json(api.runs_record(what, self.S)).body)

    def stage_index(self) -> list[str]:
        """The store's :func:`api.stage_index`, reused while the storage folder is unchanged."""
        key = api.settled_mtime(self.S.storage)
        return self._reused("stages", key, lambda: api.stage_index(self.S))

    def _reused(self, name: str, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, or what it gave before under the same ``key`` (``None``: never reuse)."""
        if key is not None:
            with self._lock:
                hit = self._kept.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]  # type: ignore[no-any-return]
        value = compute()
        if key is not None:
            with self._lock:
                self._kept[name] = (key, value)
                while len(self._kept) > KEPT:
                    del self._kept[next(iter(self._kept))]
        return value

    def size(self, refresh: bool) -> dict[str, Any]:
        """The store size record, measured at most once per :data:`SIZE_TTL` unless refreshed."""
        with self._size_lock:
            now = time.time()
            if refresh or self._size is None or now - self._size[0] > SIZE_TTL:
                self._size = (now, api.size_record(self.S))
            return self._size[1]


class _IPv6Server(UIServer):
    address_family = socket.AF_INET6


def make_server(
    S: StorageSettings, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True
) -> UIServer:
    """A web view of the store ``S`` listening on ``host:port`` (port 0: any free port).

    Call ``serve_forever()`` on it (in a thread, for tests) and ``shutdown()``
    to stop it.

    Raises:
        StoreError: there is no store at ``S``.
        OSError: the address cannot be bound.
    """
    check_store(S)
    cls = _IPv6Server if ":" in host else UIServer
    return cls((host, port), S, quiet=quiet)


Query = dict[str, list[str]]


def _int(qs: Query, name: str, default: int, hi: int | None = None) -> int:
    raw = qs.get(name, [str(default)])[-1]
    try:
        v = int(raw)
    except ValueError:
        v = -1
    if v < 0 or (hi is not None and v > hi):
        top = f" and at most {hi}" if hi is not None else ""
        raise RequestError(f"{name} must be a whole number >= 0{top}, got {raw!r}", status=400)
    return v


def _rref(text: str, S: StorageSettings) -> RRef:
    if not is_rref(text):
        raise RequestError(f"{text!r} is not an RRef (rref:<hash>-<hash>-<name>)", status=400)
    rref2path(RRef(text), S)
    return RRef(text)


def _ref(text: str, S: StorageSettings) -> DRef | RRef:
    if is_dref(text):
        dref2path_checked(DRef(text), S)
        return DRef(text)
    if is_rref(text):
        return _rref(text, S)
    raise RequestError(f"{text!r} is neither a DRef (dref:...) nor an RRef (rref:...)", status=400)


Route = tuple[re.Pattern[str], Callable[..., Reply]]


def _q(qs: Query, name: str, default: str = "") -> str:
    return qs.get(name, [default])[-1]


def _page(kind: str, srv: UIServer, *, preload: str = "", **data: str) -> Reply:
    return Reply(200, render_page(kind, srv.S, preload=preload, **data), "text/html; charset=utf-8")


def _pages() -> dict[str, Callable[..., Reply]]:
    return {
        r"/": lambda srv, qs: _page("home", srv),
        r"/store": lambda srv, qs: _page("store", srv),
        r"/building": lambda srv, qs: _page("building", srv),
        r"/building/(?P<bid>[^/]+)": lambda srv, qs, bid: _page("buildlog", srv, id=bid),
        r"/dref/(?P<ref>[^/]+)": lambda srv, qs, ref: _page("dref", srv, ref=_dref(ref, srv.S)),
        r"/rref/(?P<ref>[^/]+)": lambda srv, qs, ref: _page("rref", srv, ref=_rref(ref, srv.S)),
        r"/graph/(?P<ref>[^/]+)": lambda srv, qs, ref: _page("graph", srv, ref=_ref(ref, srv.S)),
        r"/runs/(?P<what>[^/]+)": lambda srv, qs, what: _page(
            "runs", srv, what=what, preload=f"/api/runs/{quote(what, safe='')}"
        ),
        r"/file/(?P<ref>[^/]+)/(?P<path>.+)": lambda srv, qs, ref, path: _page(
            "file", srv, ref=_rref(ref, srv.S), path=path
        ),
        r"/diff": lambda srv, qs: _page("diff", srv, a=_q(qs, "a"), b=_q(qs, "b")),
        r"/static/(?P<name>[^/]+)": lambda srv, qs, name: _static(name),
        r"/favicon.ico": lambda srv, qs: Reply(204, b"", "image/x-icon"),
        r"/raw/(?P<ref>[^/]+)/(?P<path>.+)": _raw,
    }


def _api() -> dict[str, Callable[..., Reply]]:
    def paged(qs: Query, default: int) -> dict[str, int]:
        return {"offset": _int(qs, "offset", 0), "limit": _int(qs, "limit", default, api.MAX_LIMIT)}

    return {
        r"/api/stages": lambda srv, qs: _json(
            api.stages(srv.S, q=_q(qs, "q"), index=srv.stage_index(), **paged(qs, 100))
        ),
        r"/api/dref/(?P<ref>[^/]+)": lambda srv, qs, ref: _json(
            api.dref_record(_dref(ref, srv.S), srv.S, **paged(qs, 100))
        ),
        r"/api/rref/(?P<ref>[^/]+)": lambda srv, qs, ref: _json(
            api.rref_record(_rref(ref, srv.S), srv.S)
        ),
        r"/api/rref/(?P<ref>[^/]+)/files": lambda srv, qs, ref: _json(
            api.files_record(_rref(ref, srv.S), srv.S, **paged(qs, 1000))
        ),
        r"/api/rref/(?P<ref>[^/]+)/preview/(?P<path>.+)": lambda srv, qs, ref, path: _json(
            api.preview_record(_rref(ref, srv.S), path, srv.S)
        ),
        r"/api/rref/(?P<ref>[^/]+)/log": lambda srv, qs, ref: _json(
            api.rref_log(_rref(ref, srv.S), srv.S, _int(qs, "offset", 0))
        ),
        r"/api/graph/(?P<ref>[^/]+)": lambda srv, qs, ref: _json(
            api.graph_record(_ref(ref, srv.S), srv.S)
        ),
        r"/api/diff": lambda srv, qs: _json(
            api.diff_record(_rref(_q(qs, "a"), srv.S), _rref(_q(qs, "b"), srv.S), srv.S)
        ),
        r"/api/size": lambda srv, qs: _json(srv.size(_q(qs, "refresh", "0") == "1")),
        r"/api/roots": lambda srv, qs: _json(api.roots_record(srv.S)),
        r"/api/runs/(?P<what>[^/]+)": lambda srv, qs, what: Reply(
            200, srv.runs_json(what), "application/json"
        ),
        r"/api/building": lambda srv, qs: _json(api.building(srv.S)),
        r"/api/building/(?P<bid>[^/]+)/log": lambda srv, qs, bid: _json(
            api.building_log(bid, srv.S, _int(qs, "offset", 0))
        ),
    }


def _routes() -> list[Route]:
    return [(re.compile(p + r"\Z"), f) for p, f in {**_pages(), **_api()}.items()]


def _dref(text: str, S: StorageSettings) -> DRef:
    if not is_dref(text):
        raise RequestError(f"{text!r} is not a DRef (dref:<hash>-<name>)", status=400)
    dref2path_checked(DRef(text), S)
    return DRef(text)


def _static(name: str) -> Reply:
    where = _STATIC.get(name)
    if where is None:
        raise RequestError(f"no static file {name!r}", status=404)
    pkg, rel = where
    try:
        data = package_files(pkg).joinpath(rel).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise RequestError(
            f"{name} is missing: the web view needs the 'ui' extra: pip install 'pylightnix-ng[ui]'"
            " (in a checkout: pip install -e '.[ui]')",
            status=500,
        ) from None
    ctype = _STATIC_TYPES[os.path.splitext(name)[1]]
    return Reply(200, data, ctype, {"Cache-Control": "max-age=3600"})


def _raw(srv: UIServer, qs: Query, ref: str, path: str) -> Reply:
    real = api.file_path(_rref(ref, srv.S), path, srv.S)
    how = served_as(real, download=qs.get("download", ["0"])[-1] == "1")
    name = os.path.basename(real).replace('"', "_")
    disp = "attachment" if how.attachment else "inline"
    headers = {"Content-Disposition": f'{disp}; filename="{name}"'}
    return Reply(200, b"", how.content_type, headers, path=real)


_ROUTES = _routes()
_ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (RefError, 404),
    (StoreError, 404),
    (PylightnixError, 500),
)


class _Handler(BaseHTTPRequestHandler):
    server: UIServer
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "pylightnix-ui"

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _refuse_method(self) -> None:
        self._send(
            _json({"error": f"{self.command} is not allowed: the web view is read-only"}, 405),
            head=False,
            extra={"Allow": "GET, HEAD"},
        )

    # The names http.server dispatches methods on.
    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _reply(self) -> Reply:
        url = urlsplit(self.path)
        qs = parse_qs(url.query)
        for rx, fn in _ROUTES:
            m = rx.match(url.path)
            if m is not None:
                groups = m.groupdict()
                args = {k: (v if k == "path" else unquote(v)) for k, v in groups.items()}
                return fn(self.server, qs, **args)
        raise RequestError(f"no page or API at {url.path!r}", status=404)

    def _handle(self, *, head: bool) -> None:
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.hosts:
            msg = (
                f"refused: Host {host!r} is not this server's address "
                f"({', '.join(sorted(self.server.hosts))}); open the view by that address"
            )
            self._send(_json({"error": msg, "status": 403}, 403), head=head)
            return
        is_api = self.path.startswith("/api/")
        try:
            r = self._reply()
        except Exception as e:
            status = int(getattr(e, "status", 500)) if isinstance(e, RequestError) else 500
            for cls, code in _ERROR_STATUS:
                if not isinstance(e, RequestError) and isinstance(e, cls):
                    status = code
                    break
            msg = " ".join(str(e).split()) or type(e).__name__
            if not isinstance(e, PylightnixError):
                msg = f"internal error: {type(e).__name__}: {msg}"
                if not self.server.quiet:
                    traceback.print_exc()
            if is_api:
                r = _json({"error": msg, "status": status}, status)
            else:
                body = render_page("error", self.server.S, message=msg, status=str(status))
                r = Reply(status, body, "text/html; charset=utf-8")
        self._send(r, head=head)

    def _send(self, r: Reply, *, head: bool, extra: dict[str, str] | None = None) -> None:
        size = os.path.getsize(r.path) if r.path is not None else len(r.body)
        self.send_response(r.status)
        self.send_header("Content-Type", r.ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        is_page = r.ctype.startswith("text/html")
        self.send_header("Content-Security-Policy", PAGE_CSP if is_page else FILE_CSP)
        headers = {"Cache-Control": "no-store", **r.headers, **(extra or {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        if r.path is None:
            self.wfile.write(r.body)
            return
        with open(r.path, "rb") as f:
            while chunk := f.read(1 << 20):
                self.wfile.write(chunk)

"""A real HTTP server for tests: serves a folder on 127.0.0.1 in a thread, counts requests."""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Served:
    """A running server: its base URL, the paths requested, and an optional gate."""

    url: str
    requests: list[str] = field(default_factory=list)
    # When set, every GET waits at the barrier before answering (forces overlap).
    barrier: threading.Barrier | None = None
    # When set, every GET signals `arrived` and waits for `release` before answering.
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event | None = None


class _Handler(SimpleHTTPRequestHandler):
    served: Served

    def do_GET(self) -> None:
        self.served.requests.append(self.path)
        if self.served.barrier is not None:
            self.served.barrier.wait(timeout=60)
        if self.served.release is not None:
            self.served.arrived.set()
            self.served.release.wait(timeout=60)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_dir(directory: str, *, tls: tuple[str, str] | None = None) -> Iterator[Served]:
    """Serve ``directory`` over HTTP (HTTPS with ``tls=(certfile, keyfile)``) on 127.0.0.1."""
    served = Served("")
    handler = type("Handler", (_Handler,), {"served": served})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=directory))
    scheme = "http"
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    served.url = f"{scheme}://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield served
    finally:
        if served.release is not None:
            served.release.set()
        srv.shutdown()
        srv.server_close()
        t.join()

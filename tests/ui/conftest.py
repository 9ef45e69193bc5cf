"""Fixtures of the web view's tests: a realized sweep and a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pylightnix import DRef, StorageSettings, fsinit, mkSS
from pylightnix.ui.server import UIServer, make_server
from tests.ui.sweep import realize_sweep


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Client:
    """Talks to a running web view with full control over the request line and headers."""

    server: UIServer

    @property
    def host(self) -> str:
        """The Host header the server accepts."""
        return f"127.0.0.1:{self.server.port}"

    def get(self, path: str, *, host: str | None = None, method: str = "GET") -> Answer:
        """Send ``method path`` with ``Host: host`` (default: the server's own) verbatim."""
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            if host != "":
                c.putheader("Host", host if host is not None else self.host)
            c.endheaders()
            r = c.getresponse()
            body = r.read()
            return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
        finally:
            c.close()


@dataclass(frozen=True)
class Swept:
    """A store holding the sweep of ``tests/ui/sweep.py``."""

    S: StorageSettings
    trains: list[DRef]
    report: DRef


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    """The sweep realized once per test module (tests only read it)."""
    S = fsinit(mkSS(os.path.join(tmp_path_factory.mktemp("ui"), "plx")))
    return Swept(S, *realize_sweep(S))


@contextlib.contextmanager
def serve(S: StorageSettings) -> Iterator[Client]:
    """Run a web view of ``S`` on an ephemeral port of 127.0.0.1 while the caller uses it."""
    srv = make_server(S, host="127.0.0.1", port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield Client(srv)
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=30)


@pytest.fixture(scope="module")
def client(swept: Swept) -> Iterator[Client]:
    """A web view of the sweep's store."""
    with serve(swept.S) as c:
        yield c

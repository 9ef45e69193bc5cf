"""Backends of the remote-cache tests: real servers started here, on 127.0.0.1 only.

Every contract test runs against each backend: a local folder, S3 (a moto
server on an ephemeral port, a fresh bucket per test) and read-only HTTP (a
static server over a pushed folder). ``Backend.writer`` is where pushes go
and where tests damage objects; ``Backend.reader`` is what pulls read.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pylightnix import StorageSettings, fsinit, mkSS
from pylightnix.remote import Remote, open_remote
from tests.serve import serve_dir


@dataclass(frozen=True)
class Backend:
    """One remote as the tests see it."""

    name: str
    writer: Remote
    reader: Remote


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread of this process, on 127.0.0.1 and an ephemeral port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        srv.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    """Storage options of the test S3 server (moto accepts any credentials)."""
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


def new_bucket(endpoint: str) -> str:
    """Create an empty bucket with a unique name; return the name."""
    import boto3

    name = f"plx-{uuid.uuid4().hex[:20]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["dir", "s3", "http"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """Each kind of remote in turn (HTTP is read-only: pushes go to the folder it serves)."""
    kind = request.param
    if kind == "dir":
        r = open_remote(str(tmp_path / "cache"))
        yield Backend(kind, r, r)
    elif kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        r = open_remote(f"s3://{new_bucket(endpoint)}/cache", **s3_options(endpoint))
        yield Backend(kind, r, r)
    else:
        folder = str(tmp_path / "served")
        os.makedirs(folder)
        with serve_dir(folder) as served:
            yield Backend(kind, open_remote(folder), open_remote(served.url))


@pytest.fixture
def SB(tmp_path: Any) -> StorageSettings:
    """A second store (another machine's, as far as the cache can tell)."""
    return fsinit(mkSS(str(tmp_path / "plx-b")))

"""Download + unpack throughput of fetchurl vs ``curl`` + ``tar`` on the same archive.

Generates an archive of about ``--mb`` megabytes in a temp folder (many 1 MiB
files of random bytes plus a thousand small files), serves it on 127.0.0.1
with ``http.server`` and measures, in the same run, against the same server:

* ``curl+tar``:           ``curl -o f URL && tar xf f -C out``
* ``curl+sha256+tar``:    the same plus ``sha256sum f`` (fetchurl also hashes)
* ``fetch+unpack``:       pylightnix's streaming download with hashing, then
                          ``safe_extract`` (the work of fetchurl's realizer)
* ``fetchurl realize``:   the whole stage: the above plus inserting the
                          output into the store (tree hash, read-only, rename)

Each is run ``--repeat`` times; the best time is reported with MB/s and the
ratio to ``curl+sha256+tar`` (below 1.00: faster). The goal is a ratio near
1 for ``fetch+unpack``: the library should not be the bottleneck.

    .venv/bin/python bench/fetch.py [--mb 200] [--kind tar.gz|tar] [--repeat 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pylightnix import fsinit, instantiate, mkSS, realize1
from pylightnix.hashing import hash_file
from pylightnix.stages.fetch import _download, _Progress
from pylightnix.store.fsops import remove_tree
from pylightnix.unpack import safe_extract


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_archive(path: str, mb: int, kind: str) -> None:
    mode = "w:gz" if kind == "tar.gz" else "w"
    rnd = os.urandom(1 << 20)
    with (
        tarfile.open(path, mode, compresslevel=1)
        if kind == "tar.gz"
        else tarfile.open(path, mode) as tf
    ):
        for i in range(1000):
            data = f"small file {i}\n".encode() * 200
            ti = tarfile.TarInfo(f"pkg/small/{i:04d}.txt")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for i in range(mb):
            # Vary each block so gzip cannot deduplicate them.
            data = hashlib.sha256(str(i).encode()).digest() + rnd[32:]
            ti = tarfile.TarInfo(f"pkg/big/{i:04d}.bin")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def best(fn: Callable[[str], None], work: str, repeat: int) -> float:
    times = []
    for i in range(repeat):
        d = os.path.join(work, f"run-{fn.__name__}-{i}")
        os.makedirs(d)
        t0 = time.perf_counter()
        fn(d)
        times.append(time.perf_counter() - t0)
        remove_tree(d)  # fetchurl's realizations are read-only
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--kind", choices=["tar.gz", "tar"], default="tar.gz")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to put the archive and stores")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=a.dir) as work:
        www = os.path.join(work, "www")
        os.makedirs(www)
        name = f"data.{a.kind}"
        arc = os.path.join(www, name)
        t0 = time.perf_counter()
        make_archive(arc, a.mb, a.kind)
        size = os.path.getsize(arc)
        sha = hash_file(arc).hex()
        print(f"archive: {name}, {size / 1e6:.0f} MB, made in {time.perf_counter() - t0:.1f} s")

        handler = functools.partial(_Quiet, directory=www)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/{name}"

        def curl_tar(d: str) -> None:
            f = os.path.join(d, name)
            subprocess.run(["curl", "-s", "-f", "-o", f, url], check=True)
            os.makedirs(os.path.join(d, "out"))
            subprocess.run(["tar", "xf", f, "-C", os.path.join(d, "out")], check=True)

        def curl_sha_tar(d: str) -> None:
            f = os.path.join(d, name)
            subprocess.run(["curl", "-s", "-f", "-o", f, url], check=True)
            subprocess.run(["sha256sum", f], check=True, capture_output=True)
            os.makedirs(os.path.join(d, "out"))
            subprocess.run(["tar", "xf", f, "-C", os.path.join(d, "out")], check=True)

        class _B:  # what _Progress reads from a Build
            dref = "dref:" + "0" * 32 + "-bench"

        def fetch_unpack(d: str) -> None:
            f = os.path.join(d, name)
            digest, _ = _download(url, f, "sha256", _Progress(_B(), url, 0))  # type: ignore[arg-type]
            if digest != sha:
                raise SystemExit("hash mismatch")
            safe_extract(f, os.path.join(d, "out"))

        def fetchurl_realize(d: str) -> None:
            S = fsinit(mkSS(os.path.join(d, "plx")))
            realize1(instantiate(_fetchurl, url=url, sha256=sha, S=S))

        from pylightnix import fetchurl as _fetchurl

        results = {}
        for fn, label in [
            (curl_tar, "curl+tar"),
            (curl_sha_tar, "curl+sha256+tar"),
            (fetch_unpack, "fetch+unpack"),
            (fetchurl_realize, "fetchurl realize"),
        ]:
            results[label] = best(fn, work, a.repeat)
        srv.shutdown()
        ref = results["curl+sha256+tar"]
        print(f"{'pipeline':<20} {'best s':>8} {'MB/s':>8} {'ratio':>7}")
        for label, t in results.items():
            print(f"{label:<20} {t:8.2f} {size / 1e6 / t:8.1f} {t / ref:7.2f}")


if __name__ == "__main__":
    main()

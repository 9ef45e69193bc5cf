"""Remote-cache benchmark: push and pull through a local folder and a local S3 server.

Two workloads, each pushed from store A and pulled into a fresh store B:

* ``big``: one realization holding one file of ``--size-mib`` MiB of random
  bytes (weights-like, incompressible: ``auto`` compression stores it as a
  plain tar);
* ``small``: ``--small`` realizations of one ~1 KiB text file each
  (compressible: gzip level 1), pushed and pulled as one list of targets.

Each push and pull runs in its own Python process, which reports its wall
time and peak RSS (``ru_maxrss``); ``big`` is also run at 1/8 of its size, so
that "memory flat in artifact size" shows as two equal RSS figures.

The floor is measured in the same run on the same folders with the system
tools: push floor = ``tar -c`` (piped to ``gzip -1`` where our archives are
gzipped) of all the workload's folders into one file + a copy of it to the
remote (``cp`` into a folder; one fsspec put to S3); pull floor = a copy of
that archive back (``cp``; one fsspec get) + ``tar -x`` (through ``gzip -d``)
+ ``sha256sum`` of every extracted file. Ratios are measured / floor (the
issue's targets: pull of ``big`` within 1.5x, of ``small`` within 3x). The S3
server is moto in its own process on 127.0.0.1 and an ephemeral port.

Run: ``.venv/bin/python bench/remote.py [--size-mib 1024] [--small 1000] [--dir D]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.abspath(__file__)


# ---- stages (imported by the child processes too) ----------------------------------


def _big(b: Any) -> None:
    from pylightnix import build_cattrs, build_outpath

    n = build_cattrs(b).mib
    with open(os.path.join(build_outpath(b), "weights.bin"), "wb") as f:
        for _ in range(n):
            f.write(os.urandom(1 << 20))


def _small(b: Any) -> None:
    from pylightnix import build_cattrs, build_outpath

    i = build_cattrs(b).i
    with open(os.path.join(build_outpath(b), "metrics.csv"), "w") as f:
        f.writelines(f"{i},{j},{i * j % 97},loss_{j}\n" for j in range(50))


def big_stage(mib: int) -> Any:
    from pylightnix import build_wrapper, match_only, mkdrv

    return mkdrv({"name": "big", "mib": mib}, match_only(), build_wrapper(_big))


def small_stages(n: int) -> list[Any]:
    from pylightnix import build_wrapper, match_only, mkdrv

    return [mkdrv({"name": "small", "i": i}, match_only(), build_wrapper(_small)) for i in range(n)]


# ---- child: one timed push or pull --------------------------------------------------


def child(args: dict[str, Any]) -> None:
    from pylightnix import fsinit, mkSS
    from pylightnix.remote import open_remote, pull, push

    R = open_remote(args["url"], **args["options"])
    t0 = time.perf_counter()
    if args["op"] == "push":
        res = push(args["refs"], R, S=mkSS(args["root"]))
    else:
        res = pull(args["refs"], R, S=fsinit(mkSS(args["root"])))
    dt = time.perf_counter() - t0
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec.
    with open("/proc/self/status") as f:
        rss = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024
    print(json.dumps({"seconds": dt, "rss_mib": rss, "bytes": res.nbytes}))


def run_child(op: str, root: str, url: str, options: dict[str, Any], refs: list[str]) -> Any:
    arg = {"op": op, "root": root, "url": url, "options": options, "refs": refs}
    p = subprocess.run(
        [sys.executable, HERE, "--child", json.dumps(arg)],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(HERE)),
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- the S3 server -----------------------------------------------------------------

MOTO = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print(s.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""


def start_s3() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    p = subprocess.Popen(
        [sys.executable, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    port = int(p.stdout.readline())
    opts = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": "bench",
        "secret": "bench",
        "client_kwargs": {"region_name": "us-east-1"},
        # moto takes a while to assemble a 1 GiB multipart upload on a busy VM.
        "config_kwargs": {"read_timeout": 900},
    }
    return p, opts


def new_bucket(opts: dict[str, Any], name: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=opts["endpoint_url"],
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)


# ---- floors ------------------------------------------------------------------------


def timed(cmd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t0


def local_floor(base: str, folders: list[str], gz: bool, work: str) -> tuple[float, float, str]:
    """Pack ``folders`` (relative to ``base``) with tar [| gzip -1], then unpack and
    sha256sum them: (pack seconds, unpack + hash seconds, the archive)."""
    os.makedirs(work)
    arc = os.path.join(work, "a.tar" + (".gz" if gz else ""))
    lst = os.path.join(work, "list")
    with open(lst, "w") as f:
        f.write("\n".join(folders) + "\n")
    comp = " | gzip -1" if gz else ""
    t_tar = timed(f"tar -cf - -C {base} -T {lst}{comp} > {arc}")
    out = os.path.join(work, "out")
    os.makedirs(out)
    dec = "gzip -dc" if gz else "cat"
    t_x = timed(f"{dec} {arc} | tar -xf - -C {out}")
    t_h = timed(f"find {out} -type f -print0 | xargs -0 sha256sum > /dev/null")
    shutil.rmtree(out)
    return t_tar, t_x + t_h, arc


def copy_floor(arc: str, url: str, opts: dict[str, Any]) -> tuple[float, float]:
    """Copy the archive to the remote and back: ``cp`` for a folder, one put/get for S3."""
    back = arc + ".back"
    if "://" not in url:
        os.makedirs(url, exist_ok=True)
        up = timed(f"cp {arc} {url}/floor")
        down = timed(f"cp {url}/floor {back}")
        os.unlink(os.path.join(url, "floor"))
    else:
        from pylightnix.remote import open_remote

        R = open_remote(url, **opts)
        t0 = time.perf_counter()
        R.upload(arc, "floor")
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        R.download("floor", back)
        down = time.perf_counter() - t0
        R.delete("floor")
    os.unlink(back)
    return up, down


# ---- main --------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="where stores and remotes go (default: $TMPDIR)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return

    from pylightnix import fsinit, instantiate, mkSS, realize
    from pylightnix.refs import dref_dirname, parse_rref, rref2dref

    top = tempfile.mkdtemp(prefix="plx-bench-remote-", dir=a.dir)
    moto, s3opts = start_s3()
    rows: list[tuple[str, ...]] = []
    try:
        SA = fsinit(mkSS(os.path.join(top, "a")))
        work: dict[str, tuple[list[str], bool]] = {}
        for name, mib in (("big", a.size_mib), ("big/8", max(1, a.size_mib // 8))):
            _, _, ctx = realize(instantiate(big_stage, mib, S=SA))
            work[name] = ([r for rs in ctx.values() for r in rs], False)
        _, _, ctx = realize(instantiate(small_stages, a.small, S=SA))
        work["small"] = ([r for rs in ctx.values() for r in rs], True)
        n = 0
        for wname, (refs, gz) in work.items():
            rel = [f"{dref_dirname(rref2dref(r))}/{parse_rref(r)[0]}" for r in refs]
            t_pack, t_unpack, arc = local_floor(SA.storage, rel, gz, os.path.join(top, f"f{n}"))
            for backend in ("dir", "s3"):
                n += 1
                if backend == "dir":
                    url, opts = os.path.join(top, f"remote-{n}"), {}
                else:
                    new_bucket(s3opts, f"bench-{n}")
                    url, opts = f"s3://bench-{n}/cache", s3opts
                up, down = copy_floor(arc, url, opts)
                p = run_child("push", os.path.dirname(SA.storage), url, opts, refs)
                q = run_child("pull", os.path.join(top, f"b-{n}"), url, opts, refs)
                for op, m, fl in (("push", p, t_pack + up), ("pull", q, down + t_unpack)):
                    rows.append(
                        (
                            wname,
                            backend,
                            op,
                            f"{m['seconds']:.2f}",
                            f"{fl:.2f}",
                            f"{m['seconds'] / fl:.2f}",
                            f"{m['rss_mib']:.0f}",
                            f"{m['bytes'] / 2**20:.1f}",
                        )
                    )
                shutil.rmtree(os.path.join(top, f"b-{n}"), ignore_errors=True)
                shutil.rmtree(os.path.join(top, f"remote-{n}"), ignore_errors=True)
            shutil.rmtree(os.path.dirname(arc))
    finally:
        assert moto.stdin is not None
        moto.stdin.close()
        moto.wait(timeout=60)
        subprocess.run(["chmod", "-R", "u+w", top], check=False)
        shutil.rmtree(top, ignore_errors=True)
    print(
        f"pylightnix remote benchmark: big = 1 file of {a.size_mib} MiB (random), "
        f"small = {a.small} realizations of ~1 KiB (text)"
    )
    head = ("workload", "remote", "op", "seconds", "floor s", "ratio", "peak RSS MiB", "MiB moved")
    print("  ".join(f"{h:>12}" for h in head))
    for r in rows:
        print("  ".join(f"{x:>12}" for x in r))
    print("ratio = measured / floor (tar [| gzip -1] + copy; copy + tar -x + sha256sum), same run")


if __name__ == "__main__":
    main()

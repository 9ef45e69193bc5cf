"""The seed's Quick Start, run end to end: fetch GNU Hello from a local server, build, run it.

The code below is the seed's Quick Start (pylightnix 0.2.1 PyPI page, steps
2-6) unchanged except for the download URL, which points at a local HTTP
server serving the same tarball. It runs in fresh Python processes with
``PYLIGHTNIX_ROOT`` pointing at a temporary store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve import serve_dir

FIXTURE = "/work/shared/fixtures/hello-2.10.tar.gz"
SEED_URL = "http://ftp.gnu.org"

SEED_QUICKSTART = """
from pylightnix import store_initialize
store_initialize()

from pylightnix import DRef, instantiate_inplace, fetchurl
from pylightnix import RRef, realize_inplace

hello_version = '2.10'

# Phase 1, create the derivation
hello_src:DRef = \\
  instantiate_inplace(
    fetchurl,
    name='hello-src',
    url=f'http://ftp.gnu.org/gnu/hello/hello-{hello_version}.tar.gz',
    sha256='31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b')

# Phase 2, realize the derivation into actual object
hello_rref:RRef = realize_inplace(hello_src)
print(hello_rref)

from tempfile import TemporaryDirectory
from shutil import copytree
from os import getcwd, chdir, system
from os.path import join
from pylightnix import Config, mkconfig
from pylightnix import Path, Build, build_cattrs, build_outpath, build_path
from pylightnix import mkdrv, build_wrapper, match_latest, dirrw

def hello_config()->Config:
  name:str = 'hello-bin'
  src:RefPath = [hello_src, f'hello-{hello_version}']
  return mkconfig(locals())

def hello_realize(b:Build)->None:
  c:Any = build_cattrs(b)
  o:Path = build_outpath(b)
  with TemporaryDirectory() as tmp:
    copytree(build_path(b,c.src),join(tmp,'src'))
    dirrw(Path(join(tmp,'src')))
    cwd = getcwd()
    try:
      chdir(join(tmp,'src'))
      system(f'./configure --prefix=/usr')
      system(f'make')
      system(f'make install DESTDIR={o}')
    finally:
      chdir(cwd)

# Phase 1, create the derivation. Note, we reference previous stage's
# derivation in the configuration of this derivation.
hello_dref:DRef = \\
    instantiate_inplace(mkdrv, hello_config(), match_latest(), build_wrapper(hello_realize))

# Phase 2, realize the derivation
hello_rref:RRef = realize_inplace(hello_dref)

print(hello_rref)

from pylightnix import rref2path

path=rref2path(hello_rref)
system(join(path,'usr/bin/hello'))

from pylightnix import lsref, catref, shellref, rmref, du
"""


# Runs the seed's script as __main__ with a progress hook that records which
# stages were built: the script itself stays as the seed wrote it.
RUNNER = """
import runpy, sys
import pylightnix
events = []
pylightnix.set_progress_hook(lambda e: events.append(f"{e.kind} {e.name}"))
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
finally:
    with open(sys.argv[2], "w") as f:
        f.write("\\n".join(events))
"""


def _run(script: Path, root: Path, events: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYLIGHTNIX_ROOT": str(root)}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), str(events)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_seed_quickstart_builds_and_runs_gnu_hello_then_reuses_it(tmp_path: Path) -> None:
    """The Quick Start fetches, builds and runs hello; a second run reuses both realizations."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.fail("the Quick Start needs gcc and make: run scripts/setup.sh")
    www = tmp_path / "www"
    (www / "gnu" / "hello").mkdir(parents=True)
    shutil.copy(FIXTURE, www / "gnu" / "hello" / "hello-2.10.tar.gz")
    root = tmp_path / "plx"
    script = tmp_path / "quickstart.py"
    with serve_dir(str(www)) as srv:
        assert SEED_QUICKSTART.count(SEED_URL) == 1
        script.write_text(SEED_QUICKSTART.replace(SEED_URL, srv.url))
        first = _run(script, root, tmp_path / "events1")
        assert first.returncode == 0, first.stderr[-3000:]
        second = _run(script, root, tmp_path / "events2")
        assert second.returncode == 0, second.stderr[-3000:]
    assert srv.requests == ["/gnu/hello/hello-2.10.tar.gz"]

    rrefs1 = [x for x in first.stdout.splitlines() if x.startswith("rref:")]
    rrefs2 = [x for x in second.stdout.splitlines() if x.startswith("rref:")]
    assert [r.rsplit("-", 1)[-1] for r in rrefs1] == ["src", "bin"]
    assert rrefs2 == rrefs1
    # "build <stage>" is reported right before a realizer runs.
    events1 = (tmp_path / "events1").read_text().splitlines()
    events2 = (tmp_path / "events2").read_text().splitlines()
    assert [e for e in events1 if e.startswith("build ")] == ["build hello-src", "build hello-bin"]
    assert "download hello-src" in events1
    assert [e for e in events2 if e.startswith("build ")] == []
    assert [e for e in events2 if e.startswith("download ")] == []
    assert first.stdout.splitlines()[-1] == "Hello, world!"
    assert second.stdout.splitlines() == [*rrefs1, "Hello, world!"]

    from pylightnix import drefrrefs, mkSS, rref2dref, rref2path

    S = mkSS(str(root))
    hello_rref = rrefs1[1]
    assert drefrrefs(rref2dref(hello_rref), S) == [hello_rref]  # type: ignore[arg-type]
    hello = os.path.join(rref2path(hello_rref, S), "usr", "bin", "hello")  # type: ignore[arg-type]
    out = subprocess.run([hello], capture_output=True, text=True, check=True)
    assert out.stdout == "Hello, world!\n"

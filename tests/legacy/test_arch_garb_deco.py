"""The original's archives, GC helpers, autodrv/realizeU and 0.2.x matchers
(legacy/arch.py, legacy/garb.py, legacy/deco.py, legacy/stages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from pylightnix import (
    Build,
    Registry,
    StorageSettings,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    linkrref,
    match_all,
    mkdrv,
    mkSS,
    realize1,
    realizeMany,
    rref2dref,
    rref2path,
    rrefbstart,
    selfref,
)
from pylightnix.legacy import arch as A
from pylightnix.legacy import deco as D
from pylightnix.legacy import garb as G
from pylightnix.legacy import stages as T
from pylightnix.store.links import timestring

N = [0]


def _mk(b: Build) -> None:
    N[0] += 1
    with open(os.path.join(build_outpath(b), "f"), "w") as f:
        f.write(str(N[0]))


def _st(r: Registry | None = None) -> Any:
    return mkdrv({"name": "n", "f": [selfref, "f"]}, match_all(), build_wrapper(_mk), r)


def test_spack_sunpack_and_deref(tmp_path: Any, S: StorageSettings) -> None:
    """spack packs a closure (gz by extension), sunpack imports it into another store."""
    r = realize1(instantiate(_st, S=S))
    out = str(tmp_path / "c.tar.gz")
    assert A.spack([r], out, S) == out
    with open(out, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    S2 = fsinit(mkSS(str(tmp_path / "other")))
    assert A.sunpack(out, S2) == [r]
    assert A.deref_(r, "dref:" + "0" * 32 + "-x", S) == []


_BUILD_TWO = """
import sys
from pylightnix import fsinit, mkSS, instantiate, realize1, mknode
S = fsinit(mkSS(sys.argv[1]))
for v in ('keep', 'drop'):
    print(realize1(instantiate(mknode, {'name': v}, {'f': v}, S=S)))
"""


def test_gc_helpers(tmp_path: Any, S: StorageSettings) -> None:
    """gc_exceptions reads result links under folders; gc_candidates is a dry run keeping them."""
    p = subprocess.run(
        [sys.executable, "-c", _BUILD_TWO, S.root],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    keep_r, drop_r = p.stdout.split()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "sub").mkdir()
    linkrref(keep_r, str(keep / "sub"), "res", S)
    assert G.gc_exceptions([str(keep)], S) == ([], [keep_r])
    cand_d, cand_r = G.gc_candidates([str(keep)], S)
    assert (cand_d, cand_r) == ([rref2dref(drop_r)], [drop_r])
    assert os.path.isdir(rref2path(drop_r, S))
    assert [G.diskspace_h(x) for x in (10, 2048, 5 * 2**30)] == ["10 B", "2.0 KiB", "5.0 GiB"]


def test_autodrv_and_realizeU(S: StorageSettings) -> None:
    """autodrv registers a function as a derivation at once; realizeU gives its attributes."""

    def stage(r: Registry | None = None) -> Any:
        def double(x: int = 2, build: Any = None) -> None:
            with open(os.path.join(build.outpaths[0], "v"), "w") as f:
                f.write(str(2 * x))

        return D.autodrv(double, r=r, x=21)

    res = D.realizeU(instantiate(stage, S=S))
    assert res.x == 21
    with open(os.path.join(res.syspath, "v")) as f:
        assert f.read() == "42"


def test_02x_keys_and_matchers(S: StorageSettings) -> None:
    """latest/best/exact/texthash keys and match_n pick as the 0.2.x matchers did."""
    N[0] = 0
    _, clo = instantiate(_st, S=S)
    r1 = realize1(clo)
    rs = realizeMany(clo, force_rebuild=True)
    r2 = next(x for x in rs if x != r1)
    assert T.match_n(1, [T.latest()])(S, [r1, r2]) == [r2]
    assert T.match_n(1, [T.best("f")])(S, [r1, r2]) == [r2]
    assert T.match_n(2, [T.exact([r1])])(S, [r1, r2]) is None
    assert T.match_n(1, [T.exact([r1]), T.texthash()])(S, [r1, r2]) == [r1]
    assert T.match_n(2)(S, [r2, r1]) == sorted([r1, r2])
    assert T.lsrref(r1, [], S) == ["f"]
    assert T.catrref_(r2, ["f"], S) == ["2"]
    assert sorted(T.lsdref_(clo.dref, S)) == sorted(x.split("-")[0][5:] for x in rs)
    link = T.mksymlink(r1, str(S.root), "res", S=S)
    assert os.path.basename(link) == f"{timestring(rrefbstart(r1, S))}_res"

"""The original's Build helpers (legacy/build.py) and REPL spellings (legacy/repl.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    Registry,
    ReplError,
    StorageSettings,
    build_outpath,
    build_wrapper,
    instantiate,
    match_all,
    match_only,
    mkdrv,
    realizeMany,
    repl_build,
    repl_realize,
    rref2path,
    selfref,
)
from pylightnix.legacy import build as B
from pylightnix.legacy import repl as R

SEEN: dict[str, Any] = {}


def _env(b: Build) -> None:
    SEEN["env"] = B.build_environ(b, {"HOME": "/h"})
    outs = B.build_markstart(b, 2)
    SEEN["outs"] = outs
    for i, o in enumerate(outs):
        with open(os.path.join(o, "f"), "w") as f:
            f.write(str(i))
    B.build_markstop(b)
    B.build_markstop_noexcept(b)


def _one(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "f"), "w") as f:
        f.write("1")


def _stages(r: Registry | None = None) -> Any:
    one = mkdrv({"name": "one", "f": [selfref, "f"]}, match_only(), build_wrapper(_one), r)
    cfg = {"name": "two", "src": [one, "f"], "n": 3}
    return mkdrv(cfg, match_all(), build_wrapper(_env), r)


def test_markstart_and_environ(S: StorageSettings) -> None:
    """build_markstart gives fresh outputs; build_environ adds config keys, RefPaths resolved."""
    rrefs = realizeMany(instantiate(_stages, S=S))
    got = []
    for r in rrefs:
        with open(os.path.join(rref2path(r, S), "f")) as f:
            got.append(f.read())
    assert sorted(got) == ["0", "1"]
    env = SEEN["env"]
    assert env["HOME"] == "/h" and env["n"] == "3" and env["name"] == "two"
    assert env["src"].endswith("/f") and os.path.isfile(env["src"])
    assert len(SEEN["outs"]) == 2
    with pytest.raises(ReplError):
        B.build_markstart(Build(S, "d", {}, {}, []), 0)  # type: ignore[arg-type]


def test_buildargs_and_repl_helpers(S: StorageSettings) -> None:
    """repl_buildargs describes the paused build; repl_cancelBuild removes its folders."""
    d, clo = instantiate(_stages, S=S)
    s = repl_realize(clo)
    ba = B.repl_buildargs(s)
    assert (ba.dref, list(ba.context)) == (d, [clo.derivations[0].dref])
    assert B.mkbuildargs(S, d, {}).rarg == {}
    b = repl_build(s)
    B.repl_cancelBuild(b, s)
    assert not any(os.path.exists(p) for p in b.outpaths)
    assert s.cancelled


def test_repl_continue1_default_action_builds(S: StorageSettings) -> None:
    """repl_continue1 without outputs runs the realizer (the original's default action)."""

    def st(r: Registry | None = None) -> Any:
        return mkdrv({"name": "one", "f": [selfref, "f"]}, match_only(), build_wrapper(_one), r)

    _, clo = instantiate(st, S=S)
    s = repl_realize(clo)
    rref = R.repl_continue1(rh=s)
    assert rref is not None
    with open(os.path.join(rref2path(rref, S), "f")) as f:
        assert f.read() == "1"
    s2 = repl_realize(instantiate(st, S=S))
    assert R.repl_continueMany(out_rrefs=[rref], rh=s2) == [rref]

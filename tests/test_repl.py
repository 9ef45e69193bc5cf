"""Tests of REPL debugging: pause, build by hand, continue, cancel, and the same checks."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pylightnix import (
    Build,
    DRef,
    MatcherError,
    PromiseError,
    ReplError,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    drefrrefs,
    instantiate,
    match_latest,
    mkdrv,
    realize1,
    repl_build,
    repl_cancel,
    repl_continue,
    repl_continueBuild,
    repl_realize,
    repl_result,
    repl_rref,
    repl_rrefs,
    rref2path,
    selfref,
)

CALLS: list[str] = []


def _src(b: Build) -> None:
    CALLS.append("src")
    with open(os.path.join(build_outpath(b), "a.txt"), "w") as f:
        f.write("base")


def _top(b: Build) -> None:
    CALLS.append("top")
    with open(build_path(b, build_cattrs(b).src)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "b.txt"), "w") as f:
        f.write(text + "!")


def _stage(n: int = 1) -> DRef:
    s = mkdrv({"name": "src", "a": [selfref, "a.txt"]}, match_latest(), build_wrapper(_src))
    return mkdrv(
        {"name": "top", "src": [s, "a.txt"], "b": [selfref, "b.txt"]},
        match_latest(n),
        build_wrapper(_top),
    )


def _read(*p: str) -> str:
    with open(os.path.join(*p)) as f:
        return f.read()


def _write(b: Build, name: str, text: str, i: int = 0) -> None:
    with open(os.path.join(b.outpaths[i], name), "w") as f:
        f.write(text)


@pytest.fixture(autouse=True)
def _no_session() -> Any:
    """Every test starts and ends without a current session."""
    repl_cancel()
    CALLS.clear()
    yield
    repl_cancel()


def test_pause_build_continue(S: StorageSettings) -> None:
    """Paused at the target: deps are realized, the user builds it, the result is stored."""
    d, clo = instantiate(_stage, S=S)
    s = repl_realize(clo)
    assert s.paused is not None
    assert s.paused.dref == d
    assert CALLS == ["src"]
    b = repl_build()
    assert b.dref == d
    assert list(b.context) == [clo.derivations[0].dref]
    _write(b, "b.txt", "by hand")
    s2 = repl_continueBuild(b)
    assert s2 is s
    assert s.done
    r = repl_rref()
    assert _read(rref2path(r, S), "b.txt") == "by hand"
    assert CALLS == ["src"]
    res, c, ctx = repl_result()
    assert (res, c, ctx[d]) == (d, clo, [r])


def test_pause_is_forced_even_if_realized(S: StorageSettings) -> None:
    """A paused derivation is built by hand even when a realization already matches."""
    d, clo = instantiate(_stage, S=S)
    old = realize1(clo)
    s = repl_realize(clo)
    assert s.paused is not None
    b = repl_build()
    _write(b, "b.txt", "new")
    repl_continueBuild(b)
    assert repl_rref() != old
    assert sorted(drefrrefs(d, S)) == sorted([old, repl_rref()])


def test_pause_at_a_dependency(S: StorageSettings) -> None:
    """Pausing at a dependency: the hand-made output feeds the downstream build."""
    _, clo = instantiate(_stage, S=S)
    dep = clo.derivations[0].dref
    s = repl_realize(clo, force_interrupt=[dep])
    assert s.paused is not None
    assert s.paused.dref == dep
    b = repl_build()
    _write(b, "a.txt", "hand")
    repl_continueBuild(b)
    assert s.done
    assert CALLS == ["top"]
    assert _read(rref2path(repl_rref(), S), "b.txt") == "hand!"


def test_promise_check(S: StorageSettings) -> None:
    """Outputs missing a promised file are refused, nothing is stored, the session stays paused."""
    d, clo = instantiate(_stage, S=S)
    s = repl_realize(clo)
    b = repl_build()
    with pytest.raises(PromiseError) as ei:
        repl_continueBuild(b)
    assert ei.value.missing == [os.path.join(b.outpaths[0], "b.txt")]
    assert drefrrefs(d, S) == []
    assert s.paused is not None
    _write(b, "b.txt", "fixed")
    repl_continueBuild(b)
    assert s.done


def test_matcher_check(S: StorageSettings) -> None:
    """match_latest(2) is not satisfied by one hand-made output: MatcherError, still paused."""
    d, clo = instantiate(_stage, 2, S=S)
    s = repl_realize(clo)
    b = repl_build()
    _write(b, "b.txt", "one")
    with pytest.raises(MatcherError) as ei:
        repl_continueBuild(b)
    assert str(ei.value).startswith(f"matcher Match(key=BuildTimeKey(), trim=TopN(n=2)) of {d}")
    assert s.paused is not None
    b2 = repl_build(nouts=1)
    _write(b2, "b.txt", "two")
    repl_continueBuild(b2)
    assert len(repl_rrefs()) == 2


def test_continue_with_rrefs(S: StorageSettings) -> None:
    """out_rrefs picks existing realizations in the paused context; a foreign one is refused."""
    d, clo = instantiate(_stage, S=S)
    old = realize1(clo)
    dep_rref = drefrrefs(clo.derivations[0].dref, S)[0]
    s = repl_realize(clo)
    with pytest.raises(ReplError) as ei:
        repl_continue(out_rrefs=[dep_rref])
    assert str(ei.value) == (
        f"{dep_rref!r} is not a realization of the paused {d} in its current context: "
        "give RRefs of that derivation built with these dependencies"
    )
    assert s.paused is not None
    repl_continue(out_rrefs=[old])
    assert s.done
    assert repl_rref() == old


def test_cancel_removes_temp_folders(S: StorageSettings) -> None:
    """Cancel removes the session's build folders; later calls say there is no session."""
    _, clo = instantiate(_stage, S=S)
    repl_realize(clo)
    b = repl_build()
    assert os.path.isdir(b.outpaths[0])
    repl_cancel()
    assert not os.path.exists(b.outpaths[0])
    with pytest.raises(ReplError) as ei:
        repl_build()
    assert str(ei.value) == "no REPL session: start one with repl_realize(instantiate(stage))"


def test_state_errors(S: StorageSettings) -> None:
    """Calls that do not fit the session's state are clear errors."""
    d, clo = instantiate(_stage, S=S)
    s = repl_realize(clo)
    assert repl_result() is None  # as the original: no result while paused
    with pytest.raises(ReplError) as ei:
        repl_rrefs()
    assert str(ei.value) == f"the REPL session is not done: <ReplSession paused at {d}, 1/2>"
    with pytest.raises(ReplError) as ei:
        repl_continue()
    assert str(ei.value) == (
        "repl_continue needs exactly one of out_paths=[folders] or out_rrefs=[rrefs]"
    )
    b = repl_build()
    _write(b, "b.txt", "x")
    repl_continueBuild(b, session=s)
    with pytest.raises(ReplError) as ei:
        repl_build()
    assert str(ei.value) == (
        "the REPL session is not paused at a derivation (it is done: use repl_rref())"
    )


def test_unknown_interrupt_and_no_interrupt(S: StorageSettings) -> None:
    """force_interrupt naming a foreign DRef is refused; False realizes everything."""
    _, clo = instantiate(_stage, S=S)
    foreign = DRef("dref:" + "0" * 32 + "-x")
    with pytest.raises(ReplError) as ei:
        repl_realize(clo, force_interrupt=[foreign])
    assert str(ei.value) == (
        f"force_interrupt names {foreign}, which is not in this closure "
        "(pass DRefs of the instantiated stages)"
    )
    s = repl_realize(clo, force_interrupt=False)
    assert s.done
    assert CALLS == ["src", "top"]
    assert _read(rref2path(repl_rref(), S), "b.txt") == "base!"


def test_repl_doc_session_runs(tmp_path: Any) -> None:
    """The session in docs/repl.md runs as a doctest and gives the shown output."""
    import subprocess
    import sys

    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "repl.md")
    code = (
        "import doctest, sys\n"
        "r = doctest.testfile(sys.argv[1], module_relative=False, "
        "optionflags=doctest.ELLIPSIS)\n"
        "print(r.failed, r.attempted)\n"
    )
    env = {**os.environ, "PYLIGHTNIX_ROOT": os.path.join(tmp_path, "root")}
    out = subprocess.run(
        [sys.executable, "-c", code, doc], check=True, capture_output=True, text=True, env=env
    )
    assert out.stdout.split()[-2:] == ["0", "20"]

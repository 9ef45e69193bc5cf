"""Tests of Lens navigation: every start kind, every terminal, every error path."""

from __future__ import annotations

import os
from typing import Any

import pytest

import pylightnix.lens as lens_mod
from pylightnix import (
    Build,
    DRef,
    LensError,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_wrapper,
    instantiate,
    match_all,
    match_latest,
    match_only,
    mkdrv,
    mklens,
    realize,
    realize1,
    rref2path,
    selfref,
)

SEEN: dict[str, Any] = {}


def _write_data(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "data.txt"), "w") as f:
        f.write("hello")


def _write_model(b: Build) -> None:
    lens = mklens(b)
    SEEN["build_data"] = lens.data.file.syspath
    SEEN["build_own"] = lens.weights.syspath
    with open(lens.weights.syspath, "w") as f:
        f.write(lens.data.file.contents.upper())


def _write_two(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "n.txt"), "w") as f:
            f.write(str(i))


def _pipeline() -> DRef:
    d = mkdrv(
        {"name": "data", "size": 5, "file": [selfref, "data.txt"]},
        match_latest(),
        build_wrapper(_write_data),
    )
    return mkdrv(
        {
            "name": "model",
            "data": d,
            "opts": {"lr": 0.1, "val": "v"},
            "weights": [selfref, "w.txt"],
            "src": [d, "data.txt"],
        },
        match_latest(),
        build_wrapper(_write_model),
    )


def _two() -> DRef:
    t = mkdrv({"name": "two"}, match_all(), build_wrapper(_write_two, nouts=2))
    return mkdrv({"name": "top", "two": t}, match_latest(), build_wrapper(_write_data))


def test_rref_start_walks_into_dependencies(S: StorageSettings) -> None:
    """From an RRef: values, dependency refs and system paths follow the stored contexts."""
    r = realize1(instantiate(_pipeline, S=S))
    ln = mklens(r, S)
    assert ln.opts.lr.val == 0.1
    assert ln.data.size.val == 5
    dref = ln.data.dref
    assert dref.endswith("-data")
    assert ln.data.val == dref
    assert ln.data.refpath == [dref]
    assert ln.data.syspath == rref2path(ln.data.rref, S)
    assert ln.data.file.syspath == os.path.join(rref2path(ln.data.rref, S), "data.txt")
    assert ln.data.file.contents == "hello"
    assert ln.src.contents == "hello"
    assert ln.src.refpath == [dref, "data.txt"]
    assert ln.src.dref == dref
    assert ln.weights.contents == "HELLO"
    assert ln.weights.syspath == os.path.join(rref2path(r, S), "w.txt")
    assert ln.rref == r
    assert ln.syspath == rref2path(r, S)


def test_build_start_resolves_own_outputs_and_deps(S: StorageSettings) -> None:
    """From a Build: own promises point into the output folder, deps into their realizations."""
    r = realize1(instantiate(_pipeline, S=S))
    dep = mklens(r, S).data.rref
    assert SEEN["build_data"] == os.path.join(rref2path(dep, S), "data.txt")
    assert os.path.basename(SEEN["build_own"]) == "w.txt"
    assert not SEEN["build_own"].startswith(S.storage)


def test_realize_result_and_dref_with_context(S: StorageSettings) -> None:
    """From realize()'s result (or a DRef with context=), paths resolve through the context."""
    res = realize(instantiate(_pipeline, S=S))
    _, _, ctx = res
    target = res[1].targets[0]
    assert mklens(res).weights.contents == "HELLO"
    assert mklens(target, S, context=ctx).data.file.contents == "hello"
    assert mklens(res).rref == ctx[target][0]


def test_dref_and_closure_without_context(S: StorageSettings) -> None:
    """A bare DRef or Closure navigates configs, and says why it cannot give paths."""
    d, clo = instantiate(_pipeline, S=S)
    assert mklens(d, S).data.size.val == 5
    assert mklens(clo).opts.lr.val == 0.1
    assert mklens((d, clo)).opts.get("val").val == "v"
    with pytest.raises(LensError) as ei:
        mklens(d, S).data.syspath  # noqa: B018
    assert str(ei.value) == (
        f"mklens({d}).data.syspath: {d} was given without a context (start from an RRef, "
        "a Build or realize()'s result to resolve system paths)"
    )


def test_terminal_named_keys_via_get(S: StorageSettings) -> None:
    """A config key named like a terminal is reached with get() or []."""
    d, _ = instantiate(_pipeline, S=S)
    assert mklens(d, S).opts.get("val").val == "v"
    assert mklens(d, S).opts["lr"].val == 0.1


def test_refpath_start(S: StorageSettings) -> None:
    """A RefPath with an RRef head resolves to the file in that realization."""
    r = realize1(instantiate(_pipeline, S=S))
    dep = mklens(r, S).data.rref
    assert mklens([dep, "data.txt"], S).contents == "hello"
    assert mklens([dep, "data.txt"], S).refpath == [mklens(r, S).data.dref, "data.txt"]


def test_optval(S: StorageSettings) -> None:
    """optval gives None for a missing key and the value otherwise."""
    d, _ = instantiate(_pipeline, S=S)
    assert mklens(d, S).opts.nope.optval is None
    assert mklens(d, S).nope.deeper.optval is None
    assert mklens(d, S).opts.lr.optval == 0.1


def test_missing_key_error_shows_path(S: StorageSettings) -> None:
    """A missing key names the config it was looked up in and its keys."""
    r = realize1(instantiate(_pipeline, S=S))
    dref = mklens(r, S).data.dref
    with pytest.raises(LensError) as ei:
        mklens(r, S).data.weights.syspath  # noqa: B018
    assert str(ei.value) == (
        f"mklens({r}).data.weights.syspath: 'weights' is not a key of the config of "
        f"{dref} (keys: file, name, size)"
    )


def test_walk_into_scalar_error(S: StorageSettings) -> None:
    """Walking past a plain value is an error naming that value."""
    d, _ = instantiate(_pipeline, S=S)
    with pytest.raises(LensError) as ei:
        mklens(d, S).opts.lr.x.val  # noqa: B018
    assert str(ei.value) == (
        f"mklens({d}).opts.lr.x.val: cannot walk into 'x': the value at .opts.lr is 0.1, "
        "not a config or dict"
    )


def test_non_ref_terminals_error(S: StorageSettings) -> None:
    """dref/refpath/rref of a plain value are errors."""
    d, _ = instantiate(_pipeline, S=S)
    for term in ("dref", "refpath", "rref", "syspath"):
        with pytest.raises(LensError) as ei:
            getattr(mklens(d, S).opts.lr, term)
        assert str(ei.value) == (
            f"mklens({d}).opts.lr.{term}: the value 0.1 is not a DRef or RefPath"
        )


def test_several_realizations(S: StorageSettings) -> None:
    """Two matched realizations: .rrefs lists them, .rref and .syspath refuse."""
    r = realize1(instantiate(_two, S=S))
    two = mklens(r, S).two
    assert len(two.rrefs) == 2
    with pytest.raises(LensError) as ei:
        two.rref  # noqa: B018
    assert str(ei.value) == f"mklens({r}).two.rref: there are 2 realizations here; use .rrefs"
    with pytest.raises(LensError, match="there are 2 realizations here"):
        two.syspath  # noqa: B018


def test_contents_of_missing_file(S: StorageSettings) -> None:
    """Reading a file that is not there names the path."""
    r = realize1(instantiate(_pipeline, S=S))
    p = os.path.join(rref2path(r, S), "nope")
    with pytest.raises(LensError) as ei:
        mklens([r, "nope"], S).contents  # noqa: B018
    assert str(ei.value) == (
        f"mklens({[r, 'nope']!r}).contents: cannot read {p!r}: No such file or directory"
    )


def test_bad_start() -> None:
    """A start that is no ref is refused."""
    with pytest.raises(LensError) as ei:
        mklens(42)
    assert str(ei.value) == (
        "mklens('int'): expected a DRef, RRef, RefPath, Build, Closure or the result of "
        "instantiate()/realize()"
    )


def test_configs_read_once(S: StorageSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lens chain reads each config once, however many terminals are read."""
    r = realize1(instantiate(_pipeline, S=S))
    calls: list[str] = []
    real = lens_mod.drefcfg

    def counting(dref: DRef, S: StorageSettings | None = None) -> Any:
        calls.append(dref)
        return real(dref, S)

    monkeypatch.setattr(lens_mod, "drefcfg", counting)
    ln = mklens(r, S)
    for _ in range(5):
        assert ln.data.size.val == 5
        assert ln.opts.lr.val == 0.1
    assert sorted(calls) == sorted({mklens(r, S).dref, ln.data.dref})


def _link_out(b: Build) -> None:
    os.symlink(build_cattrs(b).target, os.path.join(build_outpath(b), "out.txt"))


def test_contents_never_follow_a_link_out_of_the_store(S: StorageSettings, tmp_path: Any) -> None:
    """A realization's link to a file outside the store is refused by .contents, naming it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    r = realize1(
        instantiate(
            mkdrv,
            {"name": "lo", "target": str(secret)},
            match_only(),
            build_wrapper(_link_out),
            S=S,
        )
    )
    p = os.path.join(rref2path(r, S), "out.txt")
    with pytest.raises(LensError) as ei:
        mklens([r, "out.txt"], S).contents  # noqa: B018
    assert str(ei.value) == (
        f"mklens({[r, 'out.txt']!r}).contents: {p!r} is a symlink leading outside the store "
        f"(to {str(secret)!r})"
    )

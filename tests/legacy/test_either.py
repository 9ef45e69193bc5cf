"""The original's Either API over failure capture (legacy/either.py)."""

from __future__ import annotations

import os
from typing import Any

from pylightnix import (
    Build,
    Registry,
    StorageSettings,
    build_outpath,
    build_wrapper,
    fstmpdir,
    instantiate,
    match_only,
    mkdrv,
    mkdrvE,
    realize1,
)
from pylightnix.legacy import either as E
from pylightnix.legacy.core import Output


def _ok(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "f"), "w") as f:
        f.write("ok")


def _fail(b: Build) -> None:
    raise ValueError("no good")


def test_values() -> None:
    """mkright/mkleft and the predicates and accessors."""
    r = E.mkright(Output(["a"]))
    lft = E.mkleft(["b"], "why")
    assert (E.either_isRight(r), E.either_isLeft(r), E.either_isLeft(lft)) == (True, False, True)
    assert (E.either_paths(r), E.either_paths(lft)) == (["a"], ["b"])
    assert (E.either_status(r), E.either_status(lft)) == (None, "why")


def test_realizeManyE_right_and_left(S: StorageSettings) -> None:
    """A good build is RIGHT; a failed one is LEFT with the exception's text."""

    def good(r: Registry | None = None) -> Any:
        return mkdrvE({"name": "good"}, match_only(), build_wrapper(_ok), r)

    def bad(r: Registry | None = None) -> Any:
        return mkdrvE({"name": "bad"}, match_only(), build_wrapper(_fail), r)

    g = E.realizeManyE(instantiate(good, S=S))
    assert E.either_isRight(g) and E.either_paths(g) == [realize1(instantiate(good, S=S))]
    b = E.realizeManyE(instantiate(bad, S=S))
    assert E.either_isLeft(b)
    (rref,) = E.either_paths(b)
    assert E.either_status(b) == f"{rref}: ValueError: no good"
    assert E.either_loadR([rref], S) == b


def test_either_realizer_and_matcher(S: StorageSettings) -> None:
    """Output-typed callbacks wrapped by either_realizer/either_matcher realize as usual."""

    def real(S: StorageSettings, dref: Any, ctx: Any, ra: Any) -> Output:
        o = os.path.join(fstmpdir(S), "either-out")
        os.makedirs(o)
        with open(os.path.join(o, "f"), "w") as f:
            f.write("1")
        return Output([o])

    def st(r: Registry | None = None) -> Any:
        return mkdrv(
            {"name": "eo"},
            E.either_matcher(lambda S, o: o if o.val else None),
            E.either_realizer(real),
            r,
        )

    e = E.realizeManyE(instantiate(st, S=S))
    assert E.either_isRight(e) and len(E.either_paths(e)) == 1

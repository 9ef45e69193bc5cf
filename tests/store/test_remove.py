"""Tests of rmref: safe removal of realizations and derivations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylightnix import (
    Build,
    DRef,
    RefError,
    Registry,
    StorageSettings,
    alldrefs,
    allrrefs,
    build_cattrs,
    build_outpath,
    build_path,
    build_wrapper,
    drefrrefs,
    drefrrefsC,
    instantiate,
    match_latest,
    mkdrv,
    realize1,
    rref2dref,
    rrefctx,
)
from pylightnix.errors import InUseError
from pylightnix.refs import dref_dirname
from pylightnix.stages.trivial import mkfile
from pylightnix.store.links import linkrref
from pylightnix.store.remove import rmref
from tests.helpers import listing


def _copy(b: Build) -> None:
    text = Path(build_path(b, build_cattrs(b).src)).read_text()
    Path(build_outpath(b), "copy.txt").write_text(text + "!")


def _pipe(r: Registry | None = None) -> DRef:
    src = mkfile("src", "data", "in.txt", r=r)
    return mkdrv(
        {"name": "copy", "src": [src, "in.txt"]}, match_latest(), build_wrapper(_copy), r=r
    )


def test_rmref_refuses_an_rref_used_by_another_and_says_which(S: StorageSettings) -> None:
    """Removing a dependency's realization names its user, suggests force, and changes nothing."""
    top = realize1(instantiate(_pipe, S=S))
    (src_rref,) = rrefctx(top, S)[next(iter(rrefctx(top, S)))]
    before = listing(S.storage)
    with pytest.raises(InUseError) as ei:
        rmref(src_rref, S)
    assert str(ei.value) == (
        f"cannot delete {src_rref} : it is still used by {top} "
        "(pass force=True, or remove that one first)"
    )
    assert (ei.value.ref, ei.value.users) == (src_rref, [top])
    assert listing(S.storage) == before


def test_rmref_removes_an_unused_rref_and_its_index_marker(S: StorageSettings) -> None:
    """The top realization goes away with its index marker; its dependency stays."""
    dref, clo = instantiate(_pipe, S=S)
    top = realize1(clo)
    ctx = rrefctx(top, S)
    assert rmref(top, S) == [top]
    assert drefrrefs(dref, S) == []
    assert drefrrefsC(dref, ctx, S) == []
    idx = os.path.join(S.storage, dref_dirname(dref), "by-context")
    assert [fs for _, _, fs in os.walk(idx) if fs] == []
    assert len(list(allrrefs(S))) == 1
    assert os.listdir(S.tmpdir) == []
    # The store still works: realizing again builds a fresh one.
    assert realize1(instantiate(_pipe, S=S)) == top


def test_rmref_then_dependency_in_order(S: StorageSettings) -> None:
    """Once its user is gone, the dependency's realization can be removed too."""
    top = realize1(instantiate(_pipe, S=S))
    (src_rref,) = next(iter(rrefctx(top, S).values()))
    rmref(top, S)
    assert rmref(src_rref, S) == [src_rref]
    assert list(allrrefs(S)) == []


def test_rmref_force_removes_a_used_rref(S: StorageSettings) -> None:
    """force=True removes a used realization anyway; its user remains."""
    top = realize1(instantiate(_pipe, S=S))
    (src_rref,) = next(iter(rrefctx(top, S).values()))
    assert rmref(src_rref, S, force=True) == [src_rref]
    assert list(allrrefs(S)) == [top]


def test_rmref_refuses_a_dref_others_depend_on(S: StorageSettings) -> None:
    """A derivation named in another's config is kept, naming the dependent derivation."""
    top_dref, clo = instantiate(_pipe, S=S)
    realize1(clo)
    src_dref = next(d for d in alldrefs(S) if d != top_dref)
    before = listing(S.storage)
    with pytest.raises(InUseError, match=f"it is still a dependency of {top_dref} "):
        rmref(src_dref, S)
    assert listing(S.storage) == before


def test_rmref_of_a_dref_removes_it_with_its_realizations(S: StorageSettings) -> None:
    """An unused derivation goes with all its realizations; the returned list names them."""
    top_dref, clo = instantiate(_pipe, S=S)
    top = realize1(clo)
    assert rmref(top_dref, S) == [top, top_dref]
    assert top_dref not in list(alldrefs(S))
    assert not os.path.exists(os.path.join(S.storage, dref_dirname(top_dref)))
    assert rref2dref(top) == top_dref
    (src_dref,) = alldrefs(S)
    src_rrefs = drefrrefs(src_dref, S)
    assert len(src_rrefs) == 1
    assert rmref(src_dref, S) == [*src_rrefs, src_dref]
    assert list(alldrefs(S)) == []


def test_rmref_refuses_an_rref_kept_by_a_result_link(S: StorageSettings, tmp_path: Path) -> None:
    """A realization behind a registered result link is kept until the link goes or force."""
    top = realize1(instantiate(_pipe, S=S))
    link = linkrref(top, str(tmp_path), S=S)
    with pytest.raises(InUseError) as ei:
        rmref(top, S)
    assert ei.value.users == [os.path.abspath(link)]
    assert "kept by the result link" in str(ei.value)
    os.unlink(link)
    assert rmref(top, S) == [top]


def test_rmref_of_unknown_refs(S: StorageSettings) -> None:
    """Malformed and unstored refs raise RefError."""
    with pytest.raises(RefError, match="neither a DRef nor an RRef"):
        rmref("x", S)  # type: ignore[arg-type]
    with pytest.raises(RefError, match="is not in the store"):
        rmref(DRef("dref:" + "1" * 32 + "-nope"), S)

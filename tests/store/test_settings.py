"""Tests of store/settings.py and store/init.py: where a store lives and how it is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylightnix import (
    Registry,
    StorageSettings,
    build_outpath,
    build_wrapper,
    current_storage,
    fsinit,
    fsroot,
    fsstorage,
    fstmpdir,
    instantiate,
    instantiate_inplace,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    realize_inplace,
    rref2path,
    store_initialize,
)
from pylightnix.errors import RefError, StoreError
from pylightnix.realize.build import Build
from pylightnix.store.query import rrefmeta
from pylightnix.store.settings import fsS, set_default_storage


def test_mkss_derives_absolute_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mkSS makes root, storage and tmp absolute, with storage and tmp under the root."""
    monkeypatch.chdir(tmp_path)
    S = mkSS("rel")
    assert (
        StorageSettings(
            str(tmp_path / "rel"), str(tmp_path / "rel" / "store-v2"), str(tmp_path / "rel" / "tmp")
        )
        == S
    )
    S2 = mkSS("/r", "/s", "/t", durable=True)
    assert (S2.root, S2.storage, S2.tmpdir, S2.durable) == ("/r", "/s", "/t", True)


def test_env_root_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYLIGHTNIX_ROOT chooses the default store; without it, ~/_pylightnix is used."""
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(tmp_path / "env"))
    assert fsS() == mkSS(str(tmp_path / "env"))
    assert (fsroot(), fsstorage(), fstmpdir()) == (
        str(tmp_path / "env"),
        str(tmp_path / "env" / "store-v2"),
        str(tmp_path / "env" / "tmp"),
    )
    monkeypatch.delenv("PYLIGHTNIX_ROOT")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fsS() == mkSS(str(tmp_path / "home" / "_pylightnix"))


def test_env_store_and_tmp_override_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYLIGHTNIX_STORE and PYLIGHTNIX_TMP move the storage and tmp folders."""
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(tmp_path / "r"))
    monkeypatch.setenv("PYLIGHTNIX_STORE", str(tmp_path / "s"))
    monkeypatch.setenv("PYLIGHTNIX_TMP", str(tmp_path / "t"))
    assert fsS() == StorageSettings(str(tmp_path / "r"), str(tmp_path / "s"), str(tmp_path / "t"))


def test_explicit_beats_context_beats_process_default_beats_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolution order: explicit S, current_storage, process default, environment."""
    env, glob, ctx, expl = (mkSS(str(tmp_path / n)) for n in ("env", "glob", "ctx", "expl"))
    monkeypatch.setenv("PYLIGHTNIX_ROOT", env.root)
    assert fsS() == env
    set_default_storage(glob)
    assert fsS() == glob
    with current_storage(ctx):
        assert fsS() == ctx
        assert fsS(expl) == expl
    assert fsS() == glob
    set_default_storage(None)
    assert fsS() == env


def _one(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "f"), "w") as f:
        f.write("1")


def _stage(r: Registry | None = None) -> object:
    return mkdrv({"name": "one"}, match_only(), build_wrapper(_one), r=r)


def test_explicit_store_is_used_even_with_env_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """instantiate(stage, S=S) builds into S, not into the PYLIGHTNIX_ROOT store."""
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(tmp_path / "env"))
    fsinit(None)
    S = fsinit(mkSS(str(tmp_path / "mine")))
    rref = realize1(instantiate(_stage, S=S))
    assert rref2path(rref, S).startswith(S.storage + os.sep)
    assert sorted(os.listdir(tmp_path / "env" / "store-v2")) == [
        ".locks",
        ".roots",
        ".temproots",
        "FORMAT",
    ]


def test_later_api_style_fsinit_mkss_registry(tmp_path: Path) -> None:
    """fsinit(mkSS(root)), Registry(S) and instantiate(stage, r=r) work together."""
    S = fsinit(mkSS(str(tmp_path / "r")))
    r = Registry(S)
    rref = realize1(instantiate(_stage, r=r))
    assert rref2path(rref, S).startswith(str(tmp_path / "r" / "store-v2"))


def test_fsinit_accepts_a_root_string_and_is_idempotent(tmp_path: Path) -> None:
    """fsinit(root) creates the store once; again is fine; check_not_exist refuses a second."""
    S = fsinit(str(tmp_path / "r"))
    assert mkSS(str(tmp_path / "r")) == S
    with open(os.path.join(S.storage, "FORMAT")) as f:
        assert f.read() == "pylightnix store-v2\n"
    assert sorted(os.listdir(S.storage)) == [".locks", ".roots", ".temproots", "FORMAT"]
    assert os.path.isdir(S.tmpdir)
    assert fsinit(str(tmp_path / "r")) == S
    with pytest.raises(StoreError) as ei:
        fsinit(S, check_not_exist=True)
    assert str(ei.value) == f"a store already exists at {S.storage!r} (check_not_exist=True)"


def test_fsinit_remove_existing_empties_the_store(tmp_path: Path) -> None:
    """remove_existing=True deletes the store's objects and starts afresh."""
    S = fsinit(mkSS(str(tmp_path / "r")))
    realize1(instantiate(_stage, S=S))
    fsinit(S, remove_existing=True)
    assert sorted(os.listdir(S.storage)) == [".locks", ".roots", ".temproots", "FORMAT"]


def test_store_initialize_default_uses_env_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store_initialize() creates the default store under $PYLIGHTNIX_ROOT."""
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(tmp_path / "env"))
    S = store_initialize()
    assert mkSS(str(tmp_path / "env")) == S
    assert os.path.isfile(tmp_path / "env" / "store-v2" / "FORMAT")


def test_store_initialize_custom_store_becomes_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store_initialize(custom_store, custom_tmp) makes that store the process default."""
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(tmp_path / "env"))
    S = store_initialize(str(tmp_path / "custom"), str(tmp_path / "ctmp"))
    assert (S.storage, S.tmpdir) == (str(tmp_path / "custom"), str(tmp_path / "ctmp"))
    assert fsS() == S
    rref = realize_inplace(instantiate_inplace(_stage))
    assert rref2path(rref).startswith(str(tmp_path / "custom") + os.sep)
    assert not os.path.exists(tmp_path / "env" / "store-v2")


def test_remove_existing_forgets_cached_metadata(tmp_path: Path) -> None:
    """After fsinit(remove_existing=True), a removed realization is unknown, not cached."""
    S = fsinit(mkSS(str(tmp_path / "r")))
    rref = realize1(instantiate(_stage, S=S))
    assert rrefmeta(rref, S)["pid"] == os.getpid()
    fsinit(S, remove_existing=True)
    with pytest.raises(RefError):
        rrefmeta(rref, S)

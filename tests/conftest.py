"""Shared fixtures: every test gets its own fresh store; the default store is isolated."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pylightnix import StorageSettings, fsinit, inplace_reset, mkSS
from pylightnix.store.settings import set_default_storage


@pytest.fixture(autouse=True)
def _isolated_default_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test ever touches ~/_pylightnix: PYLIGHTNIX_ROOT points at a temp folder."""
    root = tmp_path_factory.mktemp("default-root")
    monkeypatch.setenv("PYLIGHTNIX_ROOT", str(root))
    monkeypatch.delenv("PYLIGHTNIX_STORE", raising=False)
    monkeypatch.delenv("PYLIGHTNIX_TMP", raising=False)
    monkeypatch.delenv("PYLIGHTNIX_SUBSTITUTERS", raising=False)
    monkeypatch.delenv("PYLIGHTNIX_TRUSTED_KEYS", raising=False)
    set_default_storage(None)
    inplace_reset()
    yield
    set_default_storage(None)
    inplace_reset()


@pytest.fixture
def S(tmp_path: os.PathLike[str]) -> StorageSettings:
    """A fresh, initialized store in the test's temp folder."""
    return fsinit(mkSS(os.path.join(tmp_path, "plx")))

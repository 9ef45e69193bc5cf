"""Tests of the public facade ``pylightnix/__init__.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pylightnix

INIT = Path(pylightnix.__file__)


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted (case-sensitive, as ruff's RUF022 sorts) and has no duplicates."""
    names = list(pylightnix.__all__)
    assert names == sorted(set(names))


def test_every_name_in_all_exists() -> None:
    """Every name in __all__ is an attribute of the package."""
    missing = [n for n in pylightnix.__all__ if not hasattr(pylightnix, n)]
    assert missing == []


def test_every_public_import_is_listed() -> None:
    """Every public name imported in __init__.py is in __all__, and nothing else is."""
    tree = ast.parse(INIT.read_text())
    imported = {
        a.asname or a.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if not (a.asname or a.name).startswith("_")
    }
    assert sorted(imported) == sorted(pylightnix.__all__)


def test_imports_use_the_explicit_reexport_form() -> None:
    """Every re-export is written 'from pylightnix.x import Y as Y' (or an explicit rename)."""
    tree = ast.parse(INIT.read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert node.module is not None and node.module.startswith("pylightnix")
            for a in node.names:
                assert a.asname is not None, a.name
        else:
            assert not isinstance(node, ast.Import)


def test_legacy_names_are_not_in_all() -> None:
    """The original's names resolve lazily (pylightnix.legacy) and never enter __all__."""
    from pylightnix.legacy import GONE, LEGACY

    assert sorted((set(LEGACY) | set(GONE)) & set(pylightnix.__all__)) == []

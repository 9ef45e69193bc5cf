"""Tests of the public facade ``pylightnix/__init__.py``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pylightnix

INIT = Path(pylightnix.__file__)


def _lazy_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """The imports under ``if TYPE_CHECKING:``: the lazily loaded names."""
    return [
        n
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for n in node.body
        if isinstance(n, ast.ImportFrom)
    ]


def _reexports(tree: ast.Module) -> list[ast.ImportFrom]:
    """The facade's imports: top-level ones (loaded at once) and the lazily loaded ones."""
    return [n for n in tree.body if isinstance(n, ast.ImportFrom)] + _lazy_imports(tree)


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
        for node in _reexports(tree)
        for a in node.names
        if not (a.asname or a.name).startswith("_")
    }
    assert sorted(imported) == sorted(pylightnix.__all__)


def test_imports_use_the_explicit_reexport_form() -> None:
    """Every re-export is written 'from pylightnix.x import Y as Y' (or an explicit rename)."""
    tree = ast.parse(INIT.read_text())
    for node in _reexports(tree):
        assert node.module is not None and node.module.startswith("pylightnix")
        for a in node.names:
            assert a.asname is not None, a.name
    assert not any(isinstance(node, ast.Import) for node in tree.body)


def test_lazy_table_matches_the_type_checking_imports() -> None:
    """Each lazily loaded name comes from the module its TYPE_CHECKING import names."""
    tree = ast.parse(INIT.read_text())
    expected = {
        (a.asname or a.name): node.module
        if a.asname in (None, a.name)
        else f"{node.module}:{a.name}"
        for node in _lazy_imports(tree)
        for a in node.names
    }
    assert expected == pylightnix._LAZY


def test_lazy_names_resolve_to_the_module_objects() -> None:
    """A lazily loaded name is the very object its module defines."""
    from pylightnix.realize.engine import realize
    from pylightnix.store.query import store_dref2path

    assert pylightnix.realize is realize
    assert pylightnix.dref2path is store_dref2path


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name the facade does not export raises AttributeError naming it."""
    try:
        pylightnix.no_such_name  # noqa: B018
    except AttributeError as e:
        assert str(e) == "module 'pylightnix' has no attribute 'no_such_name'"
    else:
        raise AssertionError("no AttributeError")


HEAVY = [
    "pylightnix.autostage",
    "pylightnix.realize.engine",
    "pylightnix.store.archive",
    "pylightnix.stages.fetch",
    "pylightnix.unpack",
    "ast",
    "inspect",
    "tarfile",
    "http.client",
    "urllib.request",
    "concurrent.futures",
    "click",
    "rich",
]


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    return [m for m in HEAVY if m in loaded]


def test_import_loads_no_heavy_module() -> None:
    """`import pylightnix` loads none of the heavy modules (archives, HTTP, AST, executors, CLI)."""
    assert _loaded_after("import pylightnix") == []


def test_core_names_leave_conveniences_unloaded() -> None:
    """Using the core (mkdrv, realize, matchers) loads no archive, HTTP, AST or CLI module."""
    loaded = _loaded_after("from pylightnix import mkdrv, realize, match_latest, StorageSettings")
    # dataclasses itself imports inspect and ast; the scheduler needs concurrent.futures.
    core = ("pylightnix.realize.engine", "concurrent.futures", "inspect", "ast")
    assert [m for m in loaded if m not in core] == []


def test_legacy_names_are_not_in_all() -> None:
    """The original's names resolve lazily (pylightnix.legacy) and never enter __all__."""
    from pylightnix.legacy import GONE, LEGACY

    assert sorted((set(LEGACY) | set(GONE)) & set(pylightnix.__all__)) == []

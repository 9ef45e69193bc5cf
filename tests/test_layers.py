"""The layer diagram (DESIGN.md section 5) holds: imports point downwards only.

Every module under ``src/pylightnix`` is parsed with ``ast``; each import of a
pylightnix module must target the same or a lower layer (imports under
``if TYPE_CHECKING:`` are for type hints only and are not counted), and the core
imports nothing but the standard library (extras only lazily, inside functions).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import pylightnix

SRC = Path(pylightnix.__file__).parent

LAYERS: dict[str, int] = {
    # pure or near-pure foundations
    "types": 0,
    "errors": 0,
    "refs": 0,
    "config": 0,
    "hashing": 0,
    "progress": 0,
    "unpack": 0,
    "gcpause": 0,
    "store": 1,
    # remote caches over fsspec (the `remote` extra), on the store's archives and insert
    "remote": 2,
    "realize": 3,
    # convenience APIs on the core
    "inplace": 4,
    "autostage": 4,
    "lens": 4,
    "repl": 4,
    "runs": 4,
    "stages": 4,
    "demo": 4,
    # the original's names and modules, mapped onto the above (issue 14)
    "legacy": 4,
    "arch": 4,
    "either": 4,
    "core": 4,
    "utils": 4,
    "build": 4,
    "bashlike": 4,
    "garb": 4,
    "deco": 4,
    # the command line, the web view and the facade sit on top
    "cli": 5,
    "ui": 5,
    "__main__": 5,
    "__init__": 6,
}
EXTRAS = {
    "click",
    "rich",
    "dask",
    "distributed",
    "cloudpickle",
    "fsspec",
    "s3fs",
    "cryptography",
}
"""Third-party packages of the optional extras; the core may import them only lazily."""


def _modname(p: Path) -> str:
    rel = p.relative_to(SRC).with_suffix("")
    return ".".join(rel.parts)


def _layer(mod: str) -> int:
    """Layer of a module path relative to the package (``store.gc`` -> 1)."""
    head = mod.split(".", maxsplit=1)[0] if mod else "__init__"
    if head not in LAYERS:
        raise AssertionError(
            f"module pylightnix.{mod} is in no layer: add {head!r} to LAYERS in {__file__}"
        )
    return LAYERS[head]


def _imports(tree: ast.Module, mod: str, is_pkg: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of every import outside TYPE_CHECKING."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for n in child.orelse:
                    visit(n, in_func)
                continue
            f = in_func or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, f) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = mod.split(".")
                    base = base if is_pkg else base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    name = ".".join(
                        ["pylightnix", *base, *([child.module] if child.module else [])]
                    )
                else:
                    name = child.module or ""
                out.append((name, child.lineno, f))
            visit(child, f)

    visit(tree, False)
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=_modname)
def test_imports_point_downwards_and_core_uses_stdlib_only(path: Path) -> None:
    """Each module imports only its own or lower layers, and only stdlib outside the CLI and UI."""
    mod = _modname(path)
    is_pkg = path.name == "__init__.py"
    if is_pkg:
        mod = mod.removesuffix(".__init__").removesuffix("__init__")
    own = LAYERS["__init__"] if mod == "" else _layer(mod)
    bad: list[str] = []
    for name, line, in_func in _imports(ast.parse(path.read_text()), mod, is_pkg):
        top = name.split(".")[0]
        if top == "pylightnix":
            target = name.removeprefix("pylightnix").removeprefix(".")
            if target and _layer(target) > own:
                bad.append(f"line {line}: imports {name} (layer {_layer(target)} > {own})")
        elif top == "__future__" or top in sys.stdlib_module_names or own == LAYERS["cli"]:
            continue
        elif not (in_func and top in EXTRAS):
            bad.append(f"line {line}: imports third-party {name} in the core")
    assert bad == [], f"pylightnix.{mod}: " + "; ".join(bad)


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The import scanner sees relative, absolute and lazy imports (so the check can fail)."""
    src = (
        "from typing import TYPE_CHECKING\n"
        "from pylightnix.realize.engine import realize\n"
        "from ..inplace import x\n"
        "if TYPE_CHECKING:\n"
        "    from pylightnix.cli import main\n"
        "def f():\n"
        "    import dask\n"
    )
    got = _imports(ast.parse(src), "store.gc", False)
    assert got == [
        ("typing", 1, False),
        ("pylightnix.realize.engine", 2, False),
        ("pylightnix.inplace", 3, False),
        ("dask", 7, True),
    ]
    assert _layer("realize.engine") > _layer("store.gc")


@pytest.mark.parametrize("path", MODULES, ids=_modname)
def test_no_assert_statements_in_src(path: Path) -> None:
    """Validation never uses assert in the library (it must hold under python -O)."""
    tree = ast.parse(path.read_text())
    lines = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert lines == [], f"pylightnix.{_modname(path)} uses assert at lines {lines}"

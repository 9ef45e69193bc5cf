"""The legacy-name table and its lookup (``pylightnix/legacy/__init__.py``)."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

import pylightnix
from pylightnix.legacy import GONE, LEGACY, STDLIB

ALIAS_MODULES = (
    "pylightnix.arch",
    "pylightnix.either",
    "pylightnix.stages.fetch2",
    "pylightnix.core",
    "pylightnix.utils",
    "pylightnix.build",
    "pylightnix.bashlike",
    "pylightnix.garb",
    "pylightnix.deco",
)


@pytest.mark.parametrize("name", sorted(set(LEGACY) - {"unpack"}))
def test_every_legacy_name_resolves_with_a_warning(name: str) -> None:
    """Each of the original's names resolves from pylightnix, warning with its new spelling."""
    mod, attr, new = LEGACY[name]
    with pytest.warns(DeprecationWarning) as rec:
        got = getattr(pylightnix, name)
    assert [str(w.message) for w in rec] == [
        f"pylightnix.{name} is a name of the original Pylightnix; in this package: {new} "
        "(see docs/migrating.md)"
    ]
    want = getattr(importlib.import_module(mod), attr.removesuffix("()"))
    assert got == (want() if attr.endswith("()") else want)


def test_unpack_is_the_module_at_the_top_and_the_stage_in_fetch2() -> None:
    """``pylightnix.unpack`` is this package's extraction module; the stage is in fetch2."""
    from pylightnix import unpack as top
    from pylightnix.legacy.fetch2 import unpack as stage

    assert top.__name__ == "pylightnix.unpack"
    with pytest.warns(DeprecationWarning, match="stages.fetch2.unpack is a name of the original"):
        from pylightnix.stages.fetch2 import unpack
    assert unpack is stage


def test_legacy_names_stay_out_of_all_and_the_facade() -> None:
    """No legacy name is in __all__, and none is a plain attribute of the package."""
    assert sorted(set(LEGACY) & set(pylightnix.__all__)) == []
    assert sorted(n for n in LEGACY if n in vars(pylightnix) and n != "unpack") == []


def test_legacy_table_entries_are_new_names_or_helpers() -> None:
    """Names in LEGACY and GONE are disjoint and none shadows this package's own API."""
    assert set(LEGACY) & set(GONE) == set()
    assert set(GONE) & set(pylightnix.__all__) == set()


def test_unknown_and_gone_names() -> None:
    """An unknown name is a plain AttributeError; a name with no counterpart says why."""
    with pytest.raises(AttributeError) as ei:
        pylightnix.no_such_name  # noqa: B018
    assert str(ei.value) == "module 'pylightnix' has no attribute 'no_such_name'"
    with pytest.raises(AttributeError) as ei:
        pylightnix.mktag  # noqa: B018
    assert str(ei.value) == (
        "module 'pylightnix' has no attribute 'mktag': the original's mktag has no "
        "counterpart (output tags and groups were removed by the original itself in 0.3; "
        "a realizer returns one folder per output; see docs/migrating.md)"
    )
    with pytest.raises(ImportError):
        from pylightnix import WGET  # noqa: F401


@pytest.mark.parametrize("module", ALIAS_MODULES)
def test_alias_modules_resolve_legacy_and_current_names(module: str) -> None:
    """The original's modules give legacy names and this package's API, each with a warning."""
    m = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"^{module}.trimhash is a name of the original"):
        assert m.trimhash("ab" * 32) == "ab" * 16
    with pytest.warns(DeprecationWarning) as rec:
        assert m.mkdrv is pylightnix.mkdrv
    assert str(rec[0].message) == (
        f"{module} is a module of the original Pylightnix; in this package: pylightnix.mkdrv "
        "(see docs/migrating.md)"
    )
    with pytest.raises(AttributeError):
        m.__wrapped__  # noqa: B018


def test_from_import_of_legacy_names() -> None:
    """``from pylightnix import isrref`` works (with the warning), as in old code."""
    with pytest.deprecated_call():
        from pylightnix import isrref
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isrref("rref:" + "a" * 32 + "-" + "b" * 32 + "-x") is True


def test_migrating_doc_lists_every_legacy_name() -> None:
    """docs/migrating.md has a rename-table row for each legacy name and names every gone one."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "migrating.md").read_text()
    missing = [n for n, e in LEGACY.items() if f"| `{n}` | {e[2]} |" not in doc]
    assert missing == []
    assert [n for n in GONE if f"`{n}`" not in doc] == []


@pytest.mark.parametrize("name", sorted(STDLIB))
def test_standard_library_reexports(name: str) -> None:
    """The original's star-exported stdlib names resolve, warning with their module."""
    mod, attr = STDLIB[name]
    with pytest.warns(DeprecationWarning) as rec:
        got = getattr(pylightnix, name)
    assert str(rec[0].message) == (
        f"pylightnix.{name} was the original Pylightnix's re-export of {mod}.{attr}: "
        f"import it from {mod} (see docs/migrating.md)"
    )
    assert got is getattr(importlib.import_module(mod), attr)
    assert name not in pylightnix.__all__ and name not in LEGACY

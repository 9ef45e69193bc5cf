"""Tests of errors.py: the tree drawn in the docstring matches the classes; every error pickles."""

from __future__ import annotations

import builtins
import pickle
import re

import pytest

from pylightnix import errors
from pylightnix.errors import BuildError, PylightnixError

ALL_ERRORS = sorted(
    (v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, PylightnixError)),
    key=lambda c: c.__name__,
)


def _drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Class name -> (drawn parent, drawn builtin) parsed from the module docstring."""
    doc = errors.__doc__ or ""
    out: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        m = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)(?: \((\w+)\))?", line)
        if not m or not m.group(2).endswith("Error"):
            continue
        depth = len(m.group(1)) // 4 + (1 if ("├" in line or "└" in line) else 0)
        del stack[depth:]
        out[m.group(2)] = (stack[-1] if stack else None, m.group(3))
        stack.append(m.group(2))
    return out


def test_docstring_tree_lists_every_error_class_with_its_parents() -> None:
    """Every error class is drawn once, under its real parent, with its real builtin base."""
    tree = _drawn_tree()
    assert sorted(tree) == [c.__name__ for c in ALL_ERRORS]
    for cls in ALL_ERRORS:
        parent, builtin = tree[cls.__name__]
        if cls is PylightnixError:
            assert (parent, builtin) == (None, "Exception")
            continue
        assert cls.__bases__[0].__name__ == parent
        if builtin is not None:
            assert issubclass(cls, getattr(builtins, builtin))
            assert getattr(builtins, builtin) in cls.__bases__


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_message_and_attributes(cls: type[PylightnixError]) -> None:
    """pickle round trip keeps the class, the message and every attribute."""
    e = cls("something went wrong: do X", dref="dref:x", path="/p", missing=["a"])
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is cls
    assert str(e2) == "something went wrong: do X"
    assert (e2.dref, e2.path, e2.missing) == ("dref:x", "/p", ["a"])  # type: ignore[attr-defined]


def test_chained_cause_survives_raising() -> None:
    """A BuildError raised from an exception keeps it as __cause__."""
    orig = ZeroDivisionError("boom")
    with pytest.raises(BuildError) as ei:
        try:
            raise orig
        except ZeroDivisionError as exc:
            raise BuildError("failed", dref="d", stage="s") from exc
    assert ei.value.__cause__ is orig
    assert isinstance(ei.value, RuntimeError)


def test_validation_holds_under_python_O() -> None:
    """With assertions disabled (python -O), bad inputs still raise errors of the tree."""
    import subprocess
    import sys

    code = (
        "from pylightnix import ConfigError, RefError, mkconfig, parse_dref\n"
        "for f, a in ((mkconfig, {'x': float('nan')}), (parse_dref, 'dref:x')):\n"
        "    try:\n"
        "        f(a)\n"
        "    except (ConfigError, RefError) as e:\n"
        "        print(type(e).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ConfigError", "RefError"]

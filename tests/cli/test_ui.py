"""``pylightnix ui``: the real entry point serves the web view until it is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from pylightnix import ExtraMissingError, fsinit, mkSS
from pylightnix.ui import require_ui_extra
from tests.cli.conftest import Run, clean_env

# `python -m pylightnix ARGS` as a shell runs it in the foreground, with Ctrl-C's default
# meaning: a child inherits an ignored SIGINT (a test run started with `&` ignores it),
# and Python then installs no KeyboardInterrupt handler.
_FOREGROUND = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('pylightnix', run_name='__main__', alter_sys=True)"
)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _FOREGROUND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def test_ui_serves_the_store_and_stops_on_interrupt(root: str) -> None:
    """ui --store ... --port 0 --no-browser prints its address, answers the API, stops on Ctrl-C."""
    S = fsinit(mkSS(root))
    p = _start("ui", "--store", root, "--port", "0", "--no-browser")
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        prefix = f"pylightnix ui: serving {S.storage} at http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line[len("pylightnix ui: serving ") + len(S.storage) + len(" at ") :].split(" ")[0]
        assert line == f"pylightnix ui: serving {S.storage} at {url} (Ctrl-C to stop)\n"
        with urllib.request.urlopen(url + "api/stages", timeout=30) as r:
            assert json.loads(r.read()) == {"items": [], "limit": 100, "offset": 0, "total": 0}
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert (p.returncode, out, err) == (0, "", "")
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=30)


def test_ui_takes_the_group_store_option(root: str) -> None:
    """The group's --store works as well as the command's own."""
    S = fsinit(mkSS(root))
    p = _start("--store", root, "ui", "--no-browser")
    try:
        assert p.stdout is not None
        assert p.stdout.readline().startswith(f"pylightnix ui: serving {S.storage} at ")
    finally:
        p.kill()
        p.communicate(timeout=30)


def test_ui_without_a_store_says_so(plx: Run, root: str) -> None:
    """A missing store is a one-line error with exit code 1, and no server starts."""
    r = plx("ui", "--no-browser", code=1)
    storage = os.path.join(root, "store-v2")
    assert r.err == (
        f"Error: no pylightnix store at {storage!r}: initialize it with store_initialize() / "
        "fsinit(S), or `pylightnix init`\n"
    )


def test_ui_refuses_a_bad_port(plx: Run) -> None:
    """A port out of range is a usage error (exit code 2)."""
    r = plx("ui", "--port", "70000", code=2)
    assert "Invalid value for '--port': 70000 is not in the range 0<=x<=65535." in r.err


def test_missing_ui_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without plotly the web view says which extra to install."""
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any) -> Any:
        return None if name == "plotly" else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ExtraMissingError) as e:
        require_ui_extra()
    assert str(e.value) == (
        "the pylightnix web view needs the 'ui' extra (plotly is missing): "
        "pip install 'pylightnix-ng[ui]' (in a checkout: pip install -e '.[ui]')"
    )
    assert e.value.extra == "ui"  # type: ignore[attr-defined]

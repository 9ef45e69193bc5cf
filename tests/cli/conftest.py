"""Fixtures of the command-line tests: every test drives the real entry point in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

PIPELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline.py")


@dataclass(frozen=True)
class Result:
    """What one run of ``pylightnix`` did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The standard output parsed as JSON."""
        return json.loads(self.out)


Run = Callable[..., Result]


def clean_env() -> dict[str, str]:
    """This process's environment without ``PYLIGHTNIX_*`` variables (no store chosen by it)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")}


@pytest.fixture
def root(tmp_path: Any) -> str:
    """The root folder of a store (not initialized)."""
    return str(tmp_path / "plx")


@pytest.fixture
def plx(root: str, tmp_path: Any) -> Run:
    """Run ``python -m pylightnix --store ROOT ARGS...`` and check its exit code.

    Keyword arguments: ``code`` (expected exit code, default 0), ``env``
    (extra environment), ``store`` (``False``: no ``--store`` option),
    ``cwd``.
    """

    def run(
        *args: str,
        code: int = 0,
        env: dict[str, str] | None = None,
        store: bool = True,
        cwd: str | None = None,
    ) -> Result:
        e = {**clean_env(), **(env or {})}
        argv = [sys.executable, "-m", "pylightnix"]
        if store:
            argv += ["--store", root]
        p = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            env=e,
            cwd=cwd or str(tmp_path),
            timeout=120,
            check=False,
        )
        r = Result(p.returncode, p.stdout, p.stderr)
        assert r.code == code, f"exit {r.code} != {code}\nstdout:\n{r.out}\nstderr:\n{r.err}"
        return r

    return run


@dataclass(frozen=True)
class Built:
    """The realized test pipeline: RRefs and DRefs by stage name."""

    rrefs: dict[str, str]
    drefs: dict[str, str]


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Built]:
    """A store with the pipeline realized through the CLI, made once per session."""
    root = str(tmp_path_factory.mktemp("template") / "plx")
    env = clean_env()
    base = [sys.executable, "-m", "pylightnix", "--store", root]
    subprocess.run([*base, "init"], check=True, env=env, capture_output=True)
    p = subprocess.run(
        [*base, "realize", f"{PIPELINE}:report", "--json", "--no-progress"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    ctx = json.loads(p.stdout)["context"]
    rrefs = {d.rsplit("-", 1)[1]: rs[0] for d, rs in ctx.items()}
    drefs = {d.rsplit("-", 1)[1]: d for d in ctx}
    return root, Built(rrefs, drefs)


@pytest.fixture
def built(_template: tuple[str, Built], root: str) -> Built:
    """This test's store: a copy of a store where the pipeline ``report`` was realized
    through the CLI (copied, not rebuilt, to keep the suite fast)."""
    src, b = _template
    shutil.copytree(src, root, symlinks=True)
    return b

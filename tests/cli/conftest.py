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
SWEEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.py")


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


def _realize_template(root: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Initialize a store at ``root`` and run ``pylightnix realize ARGS`` on it (must succeed)."""
    env = clean_env()
    base = [sys.executable, "-m", "pylightnix", "--store", root]
    subprocess.run([*base, "init"], check=True, env=env, capture_output=True)
    return subprocess.run(
        [*base, "realize", *args], check=True, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Built]:
    """A store with the pipeline realized through the CLI, made once per session."""
    root = str(tmp_path_factory.mktemp("template") / "plx")
    p = _realize_template(root, f"{PIPELINE}:report", "--json", "--no-progress")
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


def sweep_accuracy(lr: float, seed: int) -> float:
    """The accuracy ``sweep.py``'s train writes for a learning rate and seed."""
    return round(0.9 - abs(lr - 0.22) + seed / 100, 4)


@pytest.fixture(scope="session")
def _swept_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store where the sweep ran through `realize --keep-going`, made once per session."""
    root = str(tmp_path_factory.mktemp("swept") / "plx")
    p = _realize_template(root, f"{SWEEP}:sweep", "--keep-going", "--no-progress")
    # One seed of lr=0.3 failed; match_best picks the other: no stage failed.
    assert "1 output(s) of dref:" in p.stderr
    assert len(p.stdout.splitlines()) == 3
    return root


@pytest.fixture
def swept(_swept_template: str, root: str, plx: Run) -> Run:
    """This test's store: a copy of one where the sweep of 3 learning rates x 2 seeds (one
    failing) ran through `realize --keep-going`."""
    shutil.copytree(_swept_template, root, symlinks=True)
    return plx

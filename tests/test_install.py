"""Install instructions of README.md and docs/ install this project, checked in fresh venvs.

Every ``pip install ...`` in the README and docs is found; none may install
the bare name ``pylightnix`` (on the package index that is the original
project); each distinct command is run, from the checkout, in a fresh
``python -m venv`` (pip fetches build tools and the extras' dependencies from
the package index), and the result must import this package and run
``pylightnix --help``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import pylightnix
from pylightnix.errors import DISTRIBUTION

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PIP = re.compile(r"(?:^|[`\s(])((?:[^\s`]*/)?pip3?\s+install\s[^`\n]*)")


def install_commands() -> list[tuple[str, str]]:
    """``(file, command)`` of every pip install in the README and docs (comments dropped)."""
    out: list[tuple[str, str]] = []
    for p in DOCS:
        for line in p.read_text().splitlines():
            for m in _PIP.finditer(line):
                cmd = m.group(1).split(" #", 1)[0].strip().rstrip(".,;:)")
                out.append((p.name, cmd))
    return out


def requirements(cmd: str) -> list[str]:
    """The requirement arguments of a pip install command (options and their values dropped)."""
    args = shlex.split(cmd)
    args = args[args.index("install") + 1 :]
    reqs: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("-r", "-c", "--index-url", "-i", "--extra-index-url", "--find-links", "-f"):
            skip = True
        elif a.startswith("-"):
            continue
        else:
            reqs.append(a)
    return reqs


def _name(req: str) -> str:
    base = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", base).lower()


def test_instructions_are_found_and_checked() -> None:
    """The scanner sees the README's install lines and rejects the index's pylightnix."""
    cmds = install_commands()
    assert ("README.md", "pip install -e '.[cli]'") in cmds
    assert requirements("pip install -U --find-links x 'pylightnix[cli]'") == ["pylightnix[cli]"]
    assert _name("pylightnix[cli]") == "pylightnix"
    assert _name("pylightnix_ng>=1") == DISTRIBUTION


def test_no_instruction_installs_the_original_from_the_index() -> None:
    """No README/docs line installs the bare name 'pylightnix' (the original project)."""
    bad = [
        (f, c) for f, c in install_commands() for r in requirements(c) if _name(r) == "pylightnix"
    ]
    assert bad == []


def _local(req: str) -> bool:
    return req.startswith((".", "/"))


def _distinct_local_installs() -> list[str]:
    """One command per distinct ``install ...`` argument list (``pip``/``.venv/bin/pip`` alike)."""
    seen: dict[str, str] = {}
    for _, c in install_commands():
        if all(map(_local, requirements(c))):
            seen.setdefault(c[c.index("install") :], c)
    return sorted(seen.values())


@pytest.mark.parametrize("cmd", _distinct_local_installs())
def test_install_line_in_a_fresh_venv(cmd: str, tmp_path: Path) -> None:
    """Running the line in a fresh venv from the checkout gives this project and its command."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    args = shlex.split(cmd)
    args = [str(py), "-m", "pip", "-q", *args[args.index("install") :]]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    p = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert p.returncode == 0, p.stderr
    probe = (
        "import importlib.metadata as m, pylightnix\n"
        "print(pylightnix.__version__, m.version('pylightnix-ng'))\n"
        "print(pylightnix.__file__)\n"
        "try:\n    m.version('pylightnix')\n"
        "except m.PackageNotFoundError:\n    print('no original')"
    )
    out = subprocess.run(
        [str(py), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == f"{pylightnix.__version__} {pylightnix.__version__}"
    assert out[2] == "no original"
    h = subprocess.run(
        [str(venv / "bin" / "pylightnix"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert h.returncode == 0, h.stderr
    assert h.stdout.startswith("Usage: pylightnix [OPTIONS] COMMAND [ARGS]...")
    assert "migrate" in h.stdout
    v = subprocess.run(
        [str(venv / "bin" / "pylightnix"), "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert v.stdout == f"pylightnix, version {pylightnix.__version__}\n"


def test_demo_setup_installs_only_the_core(tmp_path: Path) -> None:
    """scripts/setup.sh (the demo's set-up) prints its steps and installs no test tools."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp_path / "checkout"
    for f in files:
        dst = copy / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((ROOT / f).read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = sys.executable
    p = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    steps = [ln for ln in p.stderr.splitlines() if ln.startswith("setup: ")]
    assert steps == [
        "setup: creating the virtual environment .venv",
        "setup: installing pylightnix-ng from this checkout into .venv (pip install -e .)",
        "setup: ready: .venv/bin/python has pylightnix",
    ]
    probe = (
        "import importlib.util as u, pylightnix\n"
        "print(pylightnix.__version__, [m for m in ('pytest', 'mypy', 'ruff', 'click') "
        "if u.find_spec(m)])"
    )
    out = subprocess.run(
        [str(copy / ".venv" / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"{pylightnix.__version__} []\n"

"""Tests of demo.py: the pipeline pieces, and two real runs of ``python -m pylightnix.demo``."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

from pylightnix.demo import accuracy, make_dataset, train
from tests.helpers import unpack_store_v1


def _demo(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pylightnix.demo ARGS`` on the store root ``root``."""
    env = {**os.environ, "PYLIGHTNIX_ROOT": str(root)}
    env.pop("PYLIGHTNIX_STORE", None)
    env.pop("PYLIGHTNIX_TMP", None)
    return subprocess.run(
        [sys.executable, "-m", "pylightnix.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _run(root: Path, *args: str) -> str:
    p = _demo(root, *args)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    return p.stdout


def _stages(out: str) -> dict[str, tuple[str, str]]:
    return {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^  (dataset|train|eval) +(built|reused) +(rref:\S+)$", out, re.M)
    }


def test_demo_builds_then_reuses_everything(tmp_path: Path) -> None:
    """A cold run builds the three stages; a second run reuses the same three RRefs."""
    first = _run(tmp_path / "root")
    assert first.splitlines()[0] == (
        f"pylightnix demo on the store {tmp_path / 'root' / 'store-v2'}"
    )
    s1 = _stages(first)
    assert {k: v[0] for k, v in s1.items()} == {
        "dataset": "built",
        "train": "built",
        "eval": "built",
    }
    assert "chose among 5 training runs" in first
    assert re.search(r"^done in \d+\.\d\d s: 3 built, 0 reused$", first, re.M)

    second = _run(tmp_path / "root")
    s2 = _stages(second)
    assert {k: v[0] for k, v in s2.items()} == {
        "dataset": "reused",
        "train": "reused",
        "eval": "reused",
    }
    assert {k: v[1] for k, v in s2.items()} == {k: v[1] for k, v in s1.items()}
    assert re.search(r"^done in \d+\.\d\d s: 0 built, 3 reused$", second, re.M)


def test_demo_retrain_adds_competing_runs(tmp_path: Path) -> None:
    """--retrain keeps the dataset and adds five training runs to choose from."""
    _run(tmp_path / "root")
    out = _run(tmp_path / "root", "--retrain")
    s = _stages(out)
    assert (s["dataset"][0], s["train"][0]) == ("reused", "built")
    assert "chose among 10 training runs" in out


def test_dataset_is_deterministic_and_training_learns() -> None:
    """The dataset depends only on its seed; a trained model beats chance on it."""
    d = make_dataset(3, 300, 4, 1.0)
    assert d == make_dataset(3, 300, 4, 1.0)
    assert d != make_dataset(4, 300, 4, 1.0)
    model = train(d["train"], 5, 0.05, random.Random(0))
    assert accuracy(model, d["test"]) > 0.7


def test_demo_on_an_older_store_says_how_to_upgrade(tmp_path: Path) -> None:
    """On a root that holds a store-v1 store, the demo prints one line naming `pylightnix
    upgrade` and exits 1 (no traceback, nothing made beside the old store)."""
    root = tmp_path / "root"
    unpack_store_v1(str(root))
    p = _demo(root)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == (
        f"error: the store at '{root / 'store-v1'}' has the older format 'store-v1'; this "
        "pylightnix reads 'store-v2': upgrade it in place with `pylightnix upgrade` (or "
        "upgrade_store(S)), after stopping the processes that use it\n"
    )
    assert sorted(os.listdir(root)) == ["store-v1", "tmp"]

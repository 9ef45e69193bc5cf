#!/usr/bin/env bash
# The whole test suite: ruff, mypy --strict, then pytest (unit, property,
# process, server and doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check
.venv/bin/ruff format --check
.venv/bin/mypy src
# Independent tests run on every core (pytest-xdist); pass -n 0 to run them in one process.
exec .venv/bin/pytest -q -n auto "$@"

#!/usr/bin/env bash
# Idempotent set-up: system tools for the tests (gcc, make, tar for the GNU Hello
# Quick Start; openssl for the HTTPS fetch test's certificate), a virtual environment in .venv with pylightnix and its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in gcc make tar gzip openssl; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq build-essential tar gzip openssl >/dev/null
fi
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.pylightnix-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev,cli]'
  touch "$stamp"
fi

#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian/Ubuntu machine (or any machine with the tools).
#   scripts/setup.sh          a virtual environment in .venv with pylightnix and its extras
#   scripts/setup.sh --test   also the system tools the tests use: gcc/make/tar (the GNU Hello
#                             Quick Start), openssl (the HTTPS fetch test's certificate) and
#                             graphviz (`pylightnix graph --svg`) and chromium (the web
#                             view's browser tests, driven by Playwright without its own browsers)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

apt_install() {
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

pkgs=()
command -v "$PY" >/dev/null 2>&1 || pkgs+=(python3)
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || pkgs+=(python3-venv)
if [ "${1:-}" = "--test" ]; then
  for tool in gcc make tar gzip; do
    command -v "$tool" >/dev/null 2>&1 || { pkgs+=(build-essential tar gzip); break; }
  done
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v dot >/dev/null 2>&1 || pkgs+=(graphviz)
  command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  apt_install "${pkgs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.pylightnix-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev,cli,ui,remote,dask]'
  touch "$stamp"
fi

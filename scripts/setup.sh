#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian/Ubuntu machine (or any machine with the tools).
#   scripts/setup.sh          a virtual environment in .venv with pylightnix (the core only:
#                             what the demo needs; no extras, no test tools)
#   scripts/setup.sh --test   pylightnix with every extra and the test tools (pytest, mypy,
#                             ruff), and the system tools the tests use: gcc/make/tar (the GNU Hello
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
say() { echo "setup: $*" >&2; }
if [ "${#pkgs[@]}" -gt 0 ]; then
  say "installing system packages: ${pkgs[*]}"
  apt_install "${pkgs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pylightnix-installed
if [ -d src/pylightnix.egg-info ] || .venv/bin/python -m pip show -q pylightnix >/dev/null 2>&1; then
  # An install under the old distribution name (this project before it was renamed
  # pylightnix-ng, or the unrelated original from the package index) would shadow it.
  say "removing the distribution named 'pylightnix' from .venv (this project is pylightnix-ng)"
  .venv/bin/python -m pip uninstall -q -y pylightnix >/dev/null 2>&1 || true
  rm -rf src/pylightnix.egg-info
  rm -f "$stamp" "$stamp-core"
fi
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if [ "${1:-}" != "--test" ]; then
  # The demo needs the core only: this checkout, no extras, no test tools.
  if ! fresh "$stamp" && ! fresh "$stamp-core"; then
    say "installing pylightnix-ng from this checkout into .venv (pip install -e .)"
    .venv/bin/python -m pip install -q -e .
    touch "$stamp-core"
  fi
  say "ready: .venv/bin/python has pylightnix"
  exit 0
fi
if ! fresh "$stamp"; then
  say "installing pylightnix-ng from this checkout with its extras and the test tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev,cli,ui,remote,dask]'
  touch "$stamp"
fi

#!/usr/bin/env bash
# The main job: a small non-deterministic ML-style pipeline on the default store
# ($PYLIGHTNIX_ROOT or ~/_pylightnix). Run it twice: the second run reuses everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pylightnix.demo "$@"

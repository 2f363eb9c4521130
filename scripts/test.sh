#!/usr/bin/env bash
# Sets up from scratch (scripts/setup.sh) and runs the default test suite.
# Slow tests: `.venv/bin/python -m pytest -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The op library was just built: tests that need it must not skip.
export CONDCOMP_REQUIRE_TFLITE_OPS=1
python -m pytest -q "$@"

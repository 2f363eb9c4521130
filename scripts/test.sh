#!/usr/bin/env bash
# Sets up from scratch (scripts/setup.sh) and runs the default test suite.
# Slow tests: `.venv/bin/python -m pytest -m slow`.
# The test files are shared out between $CONDCOMP_TEST_WORKERS pytest
# processes (pytest-xdist; default: one per core, at most 4, since each holds
# its own TensorFlow); a file's tests stay in one process, so its module
# fixtures (built drivers, trained models) are made once. 1 = one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The op library was just built: tests that need it must not skip.
export CONDCOMP_REQUIRE_TFLITE_OPS=1
workers="$(bash scripts/pytest_workers.sh)"
if [ "$workers" -gt 1 ]; then
  python -m pytest -q -n "$workers" --dist loadfile "$@"
else
  python -m pytest -q "$@"
fi

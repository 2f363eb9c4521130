#!/usr/bin/env bash
# Creates .venv (if missing), installs keras_condcomp with its test/runtime extras,
# and builds the native TFLite custom-op library. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test,litert,datasets,plot,tfmot-baseline]"
bash tflite/build_ops.sh

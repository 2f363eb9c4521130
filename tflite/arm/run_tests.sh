#!/usr/bin/env bash
# Builds the aarch64 custom ops + driver (tflite/arm/build.sh) and runs the
# driver's checks under qemu-user (or natively on an aarch64 machine):
#   kernels  random kernel-API cases vs the double-precision reference
#   ops      random cases through the TFLite glue (mock TfLiteContext),
#            including invalid shapes/options that must fail cleanly
#   model    (--model) the gated layers of a small Keras network, exported
#            by export_layers.py, vs Keras' own outputs (needs the venv)
# and prints the NEON report (fmla vN.4s in the block kernels).
#
#   bash tflite/arm/run_tests.sh [--cases N] [--seed S] [--model]
#
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user
# Environment: QEMU (default qemu-aarch64), BUILD_DIR (default build/arm).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${BUILD_DIR:-$ROOT/build/arm}"
CASES=300
SEED=1
MODEL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) CASES="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --model) MODEL=1; shift ;;
    *) echo "usage: $0 [--cases N] [--seed S] [--model]" >&2; exit 2 ;;
  esac
done

BUILD_DIR="$OUT" bash "$ROOT/tflite/arm/build.sh"
if [ "$(uname -m)" = "aarch64" ]; then
  RUN=()
else
  QEMU="${QEMU:-qemu-aarch64}"
  if ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "tflite/arm/run_tests.sh: $QEMU not found (apt-get install qemu-user)" >&2
    exit 3
  fi
  RUN=("$QEMU")
fi
DRIVER="$OUT/condcomp_driver"

echo "== NEON (fmla v.4s) in the block kernels"
grep -E "block" "$OUT/neon-report.txt"
"${RUN[@]}" "$DRIVER" info
echo "== kernels"
"${RUN[@]}" "$DRIVER" kernels "$((CASES * 2))" --seed "$SEED"
echo "== ops (TFLite glue)"
"${RUN[@]}" "$DRIVER" ops "$((CASES * 3))" --seed "$SEED"
if [ "$MODEL" = 1 ]; then
  echo "== model layers vs Keras"
  PY="$ROOT/.venv/bin/python"
  [ -x "$PY" ] || PY=python3
  "$PY" "$ROOT/tflite/arm/export_layers.py" --demo -o "$OUT/layers.bin" --seed "$SEED"
  "${RUN[@]}" "$DRIVER" model "$OUT/layers.bin" --reps 3
fi
echo "tflite/arm/run_tests.sh: all aarch64 checks passed"

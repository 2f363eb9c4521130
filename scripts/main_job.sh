#!/usr/bin/env bash
# The main job, from a fresh clone: set up, train a gated model on real data,
# convert it to TFLite with the CondComp custom ops, check the .tflite against
# Keras, and benchmark the custom ops against dense XNNPACK.
#
#   bash scripts/main_job.sh              # everything goes to runs/main/
#   OUT=/tmp/run RUNS=500 bash scripts/main_job.sh
#
# Steps (each also works alone, see README.md):
#   1. scripts/setup.sh: .venv, pip install -e ".[...]", tflite/build_ops.sh
#   2. examples/paper_fc.py --dataset digits: dense MLP and condnets (tau 0.25, 0.5) on
#      scikit-learn's digits (real data, offline), timed on every inference path
#   3. tflite/convert.py: condnet_tau0.25.keras -> .tflite (custom ops) and the
#      dense builtin-op export, each run against Keras (--verify)
#   4. benchmarks/benchmark.py: the paper-sized 784-2048-2048-2048-10 gated MLP,
#      custom ops vs dense XNNPACK, tau 0.5/0.25/0.1, batch 1/32, 1/2 threads
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/main}
RUNS=${RUNS:-200}
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p "$OUT"

echo "== 1/3 train: dense vs gated MLP on digits"
python examples/paper_fc.py --dataset digits --out "$OUT/digits_fc" --verbose 2

echo "== 2/3 convert to TFLite and check against Keras"
python tflite/convert.py "$OUT/digits_fc/condnet_tau0.25.keras" -o "$OUT/digits_condnet.tflite" --verify 64
python tflite/convert.py "$OUT/digits_fc/condnet_tau0.25.keras" -o "$OUT/digits_dense.tflite" --dense --verify 64

echo "== 3/3 benchmark: custom ops vs dense XNNPACK"
python benchmarks/benchmark.py --runs "$RUNS" --out "$OUT/tflite_gated_mlp.md"

echo "main job done: results in $OUT/ (digits_fc/results.csv, *.tflite, tflite_gated_mlp.md)"

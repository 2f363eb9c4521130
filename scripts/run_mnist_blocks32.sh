#!/usr/bin/env bash
# Full MNIST, 784-1024-1024-10 gated with 32 blocks of 32 units, tau 0.28
# (top-k budget: 9 of 32 blocks = 0.28 <= the 0.30 of issue 9's target; 16
# blocks allow only 4/16 = 0.25 or 5/16 = 0.31), starting from the main runs'
# dense nets (runs/mnist_gate_sN, bash scripts/run_mnist_seeds.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: run_mnist_blocks32.sh MNIST_DIR}
PY=${PYTHON:-.venv/bin/python}
for seed in 0 1 2; do
  "$PY" examples/gate_pretrained.py --data-dir "$DATA" --seed "$seed" --num-blocks 32 --tau 0.28 \
    --dense-model "runs/mnist_gate_s$seed/dense.keras" --out "runs/mnist_gate32_s$seed" --verbose 0
done

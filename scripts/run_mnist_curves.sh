#!/usr/bin/env bash
# Issue 10's "epochs and wall time to reach dense - 0.2 points": full MNIST
# (55,000 / 5,000 val / 10,000 test), 784-1024-1024-10, 16 blocks, tau 0.25,
# top-4 budget, seeds 0 1 2: the dense net, the condnet gated from it and the
# same condnet from scratch, each with a per-epoch validation curve. One
# TensorFlow thread, pinned to one core (taskset), runs one after another, so
# the seconds of all rows are comparable; then the table
# (benchmarks/mnist_curves.{md,json}).
#   bash scripts/run_mnist_curves.sh ../shared/datasets/mnist
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: run_mnist_curves.sh MNIST_DIR}
PY=${PYTHON:-.venv/bin/python}
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c "${CORE:-0}")
for seed in 0 1 2; do
  "${PIN[@]}" "$PY" examples/gate_pretrained.py --data-dir "$DATA" --seed "$seed" --tau 0.25 \
    --budget top_k --scratch-epochs 20 --threads 1 --out "runs/curves_s$seed" --verbose 0
done
"$PY" examples/curves_table.py runs/curves_s{0,1,2} --out benchmarks/mnist_curves

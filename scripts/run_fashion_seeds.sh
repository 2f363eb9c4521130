#!/usr/bin/env bash
# Fashion-MNIST (55,000 train / 5,000 validation / 10,000 test), 784-1024-1024-10,
# 16 blocks: dense, then gated and fine-tuned at tau 0.25 and 0.5, seeds 0 1 2.
#   apt-get install -y dataset-fashion-mnist
#   bash scripts/run_fashion_seeds.sh /usr/share/datasets/fashion-mnist
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-/usr/share/datasets/fashion-mnist}
PY=${PYTHON:-.venv/bin/python}
for seed in 0 1 2; do
  "$PY" examples/gate_pretrained.py --dataset fashion_mnist --data-dir "$DATA" --seed "$seed" \
    --tau 0.25 0.5 --equal-flops-baseline --out "runs/fashion_gate_s$seed" --verbose 0
done

#!/usr/bin/env bash
# CIFAR-10 SUBSET (5,169 train images, of which 500 are the validation split,
# and 1,017 test; the full set is not available here), a small convnet
# (conv 32-32, pool, conv 64-64, pool, dense 256, 10), dense first, then the
# last two convolutions and the dense layer gated with 4 blocks (the paper's
# N=4) and fine-tuned at tau 0.5 and 0.25, seeds 0 1 2.
#   bash scripts/run_cifar_seeds.sh ../shared/datasets/cifar10-subset
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: run_cifar_seeds.sh CIFAR_DIR}
PY=${PYTHON:-.venv/bin/python}
for seed in 0 1 2; do
  "$PY" examples/gate_pretrained.py --dataset cifar10 --data-dir "$DATA" --arch conv \
    --filters 32 32 64 64 --hidden 256 --num-blocks 4 --gate-layers conv_3 conv_4 hidden_1 \
    --val-size 500 --dense-epochs 30 --finetune-epochs 20 --tau 0.5 0.25 --seed "$seed" \
    --out "runs/cifar_gate_s$seed" --verbose 0
done

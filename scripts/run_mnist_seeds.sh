#!/usr/bin/env bash
# Issue 9/10 runs: full MNIST (55,000 train / 5,000 validation / 10,000 test),
# 784-1024-1024-10, 16 blocks, dense net trained then gated and fine-tuned
# (examples/gate_pretrained.py defaults), seeds 0 1 2, then the summary and
# TFLite timing of the trained models (benchmarks/trained_models.{md,json}).
#   bash scripts/run_mnist_seeds.sh ../shared/datasets/mnist
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: run_mnist_seeds.sh MNIST_DIR}
PY=${PYTHON:-.venv/bin/python}
for seed in 0 1 2; do
  "$PY" examples/gate_pretrained.py --data-dir "$DATA" --seed "$seed" --tau 0.25 0.5 \
    --equal-flops-baseline --out "runs/mnist_gate_s$seed" --verbose 0
done
# The summary and timing of all trained models (MNIST, Fashion-MNIST, CIFAR-10
# subset) is one command, run once every data set's runs exist:
#   python benchmarks/benchmark_trained.py runs/{mnist,fashion,cifar}_gate_s{0,1,2}

#!/usr/bin/env bash
# Issue 9 item 3 / issue 10: variance-reduction ablation and gated-vs-scratch on
# full MNIST (55,000 train / 5,000 validation / 10,000 test), 784-1024-1024-10,
# 16 blocks, tau 0.25, seeds 0 1 2. Each seed's dense net is trained once
# (runs/abl_dense_sN) and every variant starts from it; fine-tuning is 6
# epochs here (tau annealed over 2; 20 and 4 in the main runs) to fit the session; from
# scratch is 20 epochs.
#   bash scripts/run_mnist_ablation.sh ../shared/datasets/mnist
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: run_mnist_ablation.sh MNIST_DIR}
PY=${PYTHON:-.venv/bin/python}
COMMON=(--data-dir "$DATA" --tau 0.25 --finetune-epochs 6 --anneal-epochs 2 --verbose 0)
for seed in 0 1 2; do
  # The main runs' dense net of this seed (same split and training) if it is there.
  dense=runs/mnist_gate_s$seed/dense.keras
  [ -f "$dense" ] || dense=runs/abl_dense_s$seed/dense.keras
  if [ ! -f "$dense" ]; then
    "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --finetune-epochs 0 \
      --warmup-epochs 0 --out "runs/abl_dense_s$seed"
  fi
  "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --dense-model "$dense" \
    --out "runs/abl_ema_s$seed"
  "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --dense-model "$dense" \
    --baseline learned --out "runs/abl_learned_s$seed"
  "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --dense-model "$dense" \
    --baseline leave_one_out --num-samples 2 --out "runs/abl_loo2_s$seed"
  "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --dense-model "$dense" \
    --policy-learning-rate 3e-5 --out "runs/abl_policylr_s$seed"
  "$PY" examples/gate_pretrained.py "${COMMON[@]}" --seed "$seed" --dense-model "$dense" \
    --finetune-epochs 0 --warmup-epochs 0 --scratch-epochs 20 --out "runs/abl_scratch_s$seed"
done

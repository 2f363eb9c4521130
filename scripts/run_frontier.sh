#!/usr/bin/env bash
# The accuracy-latency frontier of one data set (issue 27), as committed in
# benchmarks/frontier_<dataset>.{json,md,png}:
#   bash scripts/run_frontier.sh mnist ../shared/datasets/mnist
#   bash scripts/run_frontier.sh fashion_mnist /usr/share/datasets/fashion-mnist
# Resumable (trained models are reused from runs/frontier_<dataset>/). The
# trainings run as two single-thread processes, one per core (the dense nets
# and the condnets), then one process converts, evaluates and times every
# model interleaved. About 90 minutes per data set on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: run_frontier.sh DATASET DATA_DIR}
DATA=${2:?usage: run_frontier.sh DATASET DATA_DIR}
PY=${PYTHON:-.venv/bin/python}
COMMON=(--dataset "$DATASET" --data-dir "$DATA")
# The family: dense widths, the condnets (HIDDEN:BLOCKS:K:ESTIMATOR:ANNEAL[:warm][:kd]),
# the distilled (and warm-started) condnets and their distilled dense peers
# (more of each on MNIST).
DENSE=(--dense 64 128 256 384 512 768 1024)
CONDNETS=(--condnet 1024:16:4:reinforce:4 1024:16:4:straight_through:4 1024:16:4:gumbel:4)
KD_CONDNETS=(1024:16:4:straight_through:4:kd 1024:16:4:gumbel:4:kd 1024:16:4:routing:4:kd
             1024:16:4:straight_through:4:warm:kd)
KD_DENSE=(256 384)
if [ "$DATASET" = mnist ]; then
  CONDNETS+=(1024:16:4:straight_through:0 2048:32:4:reinforce:4)
  KD_CONDNETS+=(1024:16:4:reinforce:4:kd 1024:16:8:straight_through:4:kd
                2048:32:4:straight_through:4:kd 1024:16:8:straight_through:4:warm:kd
                1024:16:12:straight_through:4:warm:kd)
  KD_DENSE=(128 256 384 512)
fi
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
"$PY" examples/frontier.py "${COMMON[@]}" --train-only "${DENSE[@]}" --condnet &
"$PY" examples/frontier.py "${COMMON[@]}" --train-only --dense "${CONDNETS[@]}" &
wait
# The distilled and warm-started models, once their teachers (dense_h1024 of
# each seed) exist.
"$PY" examples/frontier.py "${COMMON[@]}" --train-only --dense --condnet "${KD_CONDNETS[@]}" &
"$PY" examples/frontier.py "${COMMON[@]}" --train-only --dense --condnet --kd-dense "${KD_DENSE[@]}" &
wait
unset TF_NUM_INTRAOP_THREADS TF_NUM_INTEROP_THREADS
"$PY" examples/frontier.py "${COMMON[@]}" "${DENSE[@]}" "${CONDNETS[@]}" "${KD_CONDNETS[@]}" \
  --kd-dense "${KD_DENSE[@]}"

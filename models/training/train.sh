#!/usr/bin/env bash
# `npm run train`: reproduce the shipped models end to end:
#   simulated dataset → train T-Net and U-Net → export ONNX → parity check in onnxruntime-node →
#   model cards with held-out metrics (and the E-Net ensemble card).
#
# Environment (all optional):
#   DATA=models/training/data/train   dataset dir; simulated (PATCHES patches, scan seeds from SEED) if it has no index.json
#   RUNS=models/training/runs         checkpoints, run records, parity fixtures
#   PATCHES=16000  SEED=1000          the shipped models' dataset (seeds 1000–1399; evaluation uses 900000+)
#   MODELS="tnet unet"                which models to train
#   BUDGET_MIN=55                     wall-clock budget per model, minutes
#   PARALLEL=1                        train the models side by side, one thread each (2-core machines)
#   TNET_CONTINUE_MIN=25              then continue T-Net alone on every thread for this long (0: no)
#   TNET_CONTINUE2_MIN=59             and once more at a lower learning rate (0: no); the shipped
#                                     T-Net's third phase was a 70-minute budget stopped by hand at 59
#   TNET_CONTINUE3_MIN=65             and a fourth time with a soft Dice term added to the loss (0: no)
#   TNET_CONTINUE4_MIN=45             and a fifth, the same at a slightly lower learning rate (0: no)
#   TNET_CONTINUE5_MIN=95             and a sixth, the same at lr 1e-4 (0: no); the shipped T-Net's sixth
#                                     phase shared the machine with benchmarks for ~10 of its minutes
#   TNET_CONTINUE6_MIN=48             and a seventh on DATA_BLENDED (0: no): the same patches, each slice
#                                     blended with its neighbours as the daemon does for T-Net's card
#   DATA_BLENDED=models/training/data/train-nb075   that dataset; simulated (neighbour weight 0.075) if missing
#   TRAIN_ARGS=""                     extra train.py arguments, e.g. "--threads 8 --batch 32"
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3  # Debian's interpreter: the one that sees python3-torch
DATA=${DATA:-models/training/data/train}
RUNS=${RUNS:-models/training/runs}
MODELS=${MODELS:-tnet unet}
mkdir -p "$RUNS"

DATA_BLENDED=${DATA_BLENDED:-models/training/data/train-nb075}
if [ ! -f "$DATA/index.json" ]; then
  node --import tsx src/cli/main.ts simulate --dataset "$DATA" --patches "${PATCHES:-16000}" --seed "${SEED:-1000}"
fi
if [[ " $MODELS " == *" tnet "* ]] && [ "${TNET_CONTINUE6_MIN:-48}" != 0 ] && [ ! -f "$DATA_BLENDED/index.json" ]; then
  node --import tsx src/cli/main.ts simulate --dataset "$DATA_BLENDED" --patches "${PATCHES:-16000}" \
    --seed "${SEED:-1000}" --neighbour-weight 0.075
fi

train() {
  # shellcheck disable=SC2086  # TRAIN_ARGS is meant to split into words
  "$PY" models/training/train.py --model "$1" --data "$DATA" --out "$RUNS" \
    --time-budget-min "${BUDGET_MIN:-55}" --max-val 1000 "${@:2}" ${TRAIN_ARGS:-} > "$RUNS/$1.log" 2>&1
}
if [ "${PARALLEL:-1}" = 1 ]; then
  pids=()
  for m in $MODELS; do train "$m" --threads 1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
else
  for m in $MODELS; do train "$m" --threads 2; done
fi

# Continue T-Net from $RUNS/tnet.pt for one more phase: continue_tnet DIR MINUTES LR [train.py args...];
# the phase's checkpoint and record become $RUNS/tnet.* (the record chains the phases before it).
continue_tnet() {
  local dir="$RUNS/$1" minutes=$2 lr=$3
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # TRAIN_ARGS is meant to split into words
  "$PY" models/training/train.py --model tnet --data "$DATA" --out "$dir" --init "$RUNS/tnet.pt" \
    --time-budget-min "$minutes" --max-val 1000 --threads 2 --lr "$lr" --warmup-steps 50 "${@:4}" ${TRAIN_ARGS:-} \
    > "$dir/tnet.log" 2>&1
  cp "$dir/tnet.pt" "$dir/tnet.train.json" "$RUNS/"
}

# T-Net learns more slowly than U-Net per epoch: give it the machine once U-Net is done. Each phase
# runs only if the one before it did.
if [[ " $MODELS " == *" tnet "* ]]; then
  for phase in "tnet-continued ${TNET_CONTINUE_MIN:-25} 3e-4" \
               "tnet-c2 ${TNET_CONTINUE2_MIN:-59} 2e-4" \
               "tnet-c3 ${TNET_CONTINUE3_MIN:-65} 1e-4 --dice-weight 1" \
               "tnet-c4 ${TNET_CONTINUE4_MIN:-45} 8e-5 --dice-weight 1" \
               "tnet-c5 ${TNET_CONTINUE5_MIN:-95} 1e-4 --dice-weight 1" \
               "tnet-c6 ${TNET_CONTINUE6_MIN:-48} 1e-4 --dice-weight 1 --data $DATA_BLENDED"; do
    # (a phase's own --data comes after continue_tnet's and wins)
    # shellcheck disable=SC2086  # the phase's words are its arguments
    set -- $phase
    [ "$2" = 0 ] && break
    continue_tnet "$@"
  done
fi

for m in $MODELS; do
  "$PY" models/training/export.py --checkpoint "$RUNS/$m.pt" --onnx "models/$m.onnx" --data "$DATA"
  node --import tsx models/training/finish-model.ts --model "$m" --runs "$RUNS" --data "$DATA"
done
if [ -f models/tnet.json ] && [ -f models/unet.json ]; then
  node --import tsx models/training/finish-model.ts --model enet
fi

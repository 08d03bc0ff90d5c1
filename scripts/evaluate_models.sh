#!/usr/bin/env bash
# Evaluates the trained models and the oracles on the synthetic test split (after train_models.sh).
#   bash scripts/evaluate_models.sh [WORK_DIR] [MAX_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-work}
MAX_SECONDS=${2:-30}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK/models"
models=()
for run in "$WORK"/runs/*/; do
  name=$(basename "$run")
  [ -f "$run/best.pt" ] || continue
  cp "$run/best.pt" "$WORK/models/$name.pt"      # the method is named after the file
  models+=(-m "$WORK/models/$name.pt")
done
# One thread per process: BSSEval's many medium-sized operations do not gain from two.
OMP_NUM_THREADS=1 $PY -m convsep evaluate --root "$WORK/synth-100" --subset test "${models[@]}" \
    --oracle irm1,irm2,mixture --max-seconds "$MAX_SECONDS" -o "$WORK/eval" --jobs 2 --no-progress

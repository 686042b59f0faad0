#!/bin/bash
# One GPU lease (7.5 min of training), 2026-11-27: research/notebook.md entry 16, rule110 at t = 12.
# Eight runs share the GPU (MPS) for the same wall time, each from the then shipped rule110-n1
# (one pass, t = 4; kept as research/checkpoints/rule110-n1), held out at t = 12:
#   n1   (seeds 31-33): one pass, asked about t = 12.
#   tied (seeds 31-33): a batch consolidated with N passes (1-4) asks about t = 3N (entry 14, K = 3).
#   curr (seeds 31-32): the tied runs' questions (t = 3, 6, 9, 12) after one pass: the curriculum
#                       without the passes.
# Stage 2 (a second lease, 3.5 min, with runs/ holding stage 1's runs) branches each run again.
# The lease carries at most 64 MiB and models/ alone is 59 MB, so that call ran with models/
# untracked for its duration (stage 2 does not read it) and runs/ carried:
#   n1c:   one pass at t = 12, a fresh cosine.
#   tied2: the tied questions of N = 1-2 only (t = 3, 6), where stage 1 stopped climbing.
#   curr2: their one-pass control (t = 3, 6 after one pass).
# Usage, from the repo root:  OUT=/some/dir bash research/experiments/gpu-sweep-2.sh [stage2]
# $OUT gets three archives of the runs (weights only, logs, args) and the sweep's log.
set -u
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PY:-python3}; R=${RUNS:-/tmp/runs}; MIN=${MINUTES:-7.5}
mkdir -p $R "$OUT"
source "$(dirname "$0")/lease.sh"; start_lease

train() {  # train NAME SEED INIT ARGS...: one background run, its output in $R/NAME.out
  local name=$1 seed=$2 init=$3; shift 3
  $PY -m export.train --out $R/$name --task rule110 --window 24 --param steps=12 --init $init \
    --steps 1000000 --budget-minutes $MIN --batch 128 --eval-every 250 --eval-examples 256 --threads 1 \
    --seed $seed "$@" > $R/$name.out 2>&1 &
}
if [ "${1:-}" = stage2 ]; then
  A=(n1c tied2 curr2)
  for s in 31 32 33; do
    train r110-t12-n1c-s$s $s runs/r110-t12-n1-s$s --passes 1
    train r110-t12-tied2-s$s $s runs/r110-t12-tied-s$s --passes 1-2 --steps-per-pass 3
  done
  for s in 31 32; do train r110-t12-curr2-s$s $s runs/r110-t12-curr-s$s --passes 1-2 --steps-per-pass 3 --one-pass; done
else
  A=(n1 tied curr)
  for s in 31 32 33; do
    train r110-t12-n1-s$s $s research/checkpoints/rule110-n1 --passes 1
    train r110-t12-tied-s$s $s research/checkpoints/rule110-n1 --passes 1-4 --steps-per-pass 3
  done
  for s in 31 32; do train r110-t12-curr-s$s $s research/checkpoints/rule110-n1 --passes 1-4 --steps-per-pass 3 --one-pass; done
fi
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait

slim_checkpoints $R  # bring back model weights only
for arm in ${A[@]}; do (cd $R && tar czf "$OUT/r110-t12-$arm.tgz" r110-t12-$arm-*); done
for f in $R/r110-t12-{${A[0]},${A[1]},${A[2]}}-*/log.jsonl; do echo "$f $(tail -1 $f | cut -c1-700)"; done

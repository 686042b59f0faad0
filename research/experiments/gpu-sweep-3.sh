#!/bin/bash
# One GPU lease (6.5 min of training), 2026-11-27: research/notebook.md entry 20, rule110 at
# t = 12 with the level climb (entry 17's --climb). Eight runs share the GPU (MPS) for the same
# wall time, each branched from a run of entries 16-18 (their runs/ folders are carried):
#   k3climb (seeds 31-33): tied passes, K = 3 (N passes ask about t = 3N), climbing levels 1-4,
#                          from entry 16's tied2 runs (level 2 at 0.65-0.68).
#   k3dense (seed 34):     the same from tied2-s31, also asked about 8 other cells per string
#                          (entry 18's --param cells=8), so that every pass must hold the ring.
#   n1e     (seeds 31-32): one pass at t = 12, from entry 16's n1c runs: the control.
#   k1climb (seed 53):     K = 1, levels 1-12, from entry 18's r110-w-plain (level 6, window token).
#   k1dense (seed 54):     K = 1, levels 1-12, cells=8, from entry 18's r110-k1-dense (level 1).
# The lease carries at most 64 MiB and models/ alone is 57 MB, so the call runs with models/
# untracked (no run here reads it) and the seven start folders carried.
# Stage 2 (a second call, 4 min, with runs/ holding stage 1's k3climb, n1e and k1climb runs)
# branches each of those six again, on a fresh cosine; the dense runs had not left level 1.
# Usage, from the repo root:  OUT=/some/dir bash research/experiments/gpu-sweep-3.sh [stage2]
# $OUT gets the runs (weights only, logs, args) in two archives and the sweep's log.
# A smoke test on a CPU first: OUT=/tmp/o RUNS=/tmp/r PY=.venv/bin/python STEPS=2 MINUTES=0.2 bash ...
set -u
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PY:-python3}; R=${RUNS:-/tmp/runs}; MIN=${MINUTES:-6.5}
mkdir -p $R "$OUT"
source "$(dirname "$0")/lease.sh"; start_lease

train() {  # train NAME SEED INIT ARGS...: one background run at t = 12, its output in $R/NAME.out
  local name=$1 seed=$2 init=$3; shift 3
  $PY -m export.train --out $R/$name --task rule110 --param steps=12 --init $init \
    --steps ${STEPS:-1000000} --budget-minutes $MIN --batch 128 --eval-every 250 --eval-examples 256 \
    --threads 1 --seed $seed "$@" > $R/$name.out 2>&1 &
}
K3="--window 24 --passes 1-4 --steps-per-pass 3 --climb 0.05"
K1="--passes 1-12 --steps-per-pass 1 --climb 0.05"
if [ "${1:-}" = stage2 ]; then
  for s in 31 32 33; do train r110-k3climb2-s$s $s runs/r110-k3climb-s$s $K3; done
  for s in 31 32; do train r110-n1f-s$s $s runs/r110-n1e-s$s --window 24 --passes 1; done
  train r110-k1climb2-s53 53 runs/r110-k1climb-s53 --window 25 --window-token $K1
else
  for s in 31 32 33; do train r110-k3climb-s$s $s runs/r110-t12-tied2-s$s $K3; done
  train r110-k3dense-s34 34 runs/r110-t12-tied2-s31 $K3 --param cells=8
  for s in 31 32; do train r110-n1e-s$s $s runs/r110-t12-n1c-s$s --window 24 --passes 1; done
  train r110-k1climb-s53 53 runs/r110-w-plain --window 25 --window-token $K1
  train r110-k1dense-s54 54 runs/r110-k1-dense --window 24 $K1 --param cells=8
fi
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait

slim_checkpoints $R  # bring back model weights only
(cd $R && tar czf "$OUT/r110-k3.tgz" r110-k3* r110-n1* && tar czf "$OUT/r110-k1.tgz" r110-k1*)
for f in $R/r110-*/log.jsonl; do echo "$f $(tail -1 $f | cut -c1-700)"; done

#!/bin/bash
# One GPU lease (~9 min), 2026-11-26: the sleep-depth runs of research/notebook.md entry 2.
# Phase 1 trains N=1 bases for depo and rule110; phase 2 branches each base into continued N=1
# and continued anytime N (1-4) for the same wall time. facts branches from runs/facts-q20 (the
# CPU N=1 run) for the whole lease. Scratch anytime runs test warm start against no warm start.
# Every run: batch 128, the clock drives the cosine (--budget-minutes). A second call continues
# each branch for 2.7 minutes more (a second cosine). Usage, from the repo root, with runs/facts-q20:
#   OUT=/some/dir bash research/experiments/gpu-sweep-1.sh            # ~9 min
#   OUT=/some/dir bash research/experiments/gpu-sweep-1.sh continue   # ~3 min, same machine
# Each call leaves three archives in $OUT (a lease returns at most eight files).
set -u
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
R=/tmp/runs; mkdir -p $R "$OUT"
T0=$(date +%s); END=$((T0 + ${TOTAL_S:-500}))
PY=python3; source "$(dirname "$0")/lease.sh"; start_lease

train() {  # train NAME MINUTES ARGS...: one background run, its output in $R/NAME.out
  local name=$1 min=$2; shift 2
  python3 -m export.train --out $R/$name --steps 1000000 --budget-minutes $min --batch 128 \
    --eval-every 250 --threads 1 "$@" > $R/$name.out 2>&1 &
}
slim_and_pack() {  # bring back model weights only (3 MB per run, no optimizer state)
  slim_checkpoints $R
  (cd $R && tar czf "$OUT/depo$1.tgz" depo-*$1* && tar czf "$OUT/r110$1.tgz" r110-*$1* && tar czf "$OUT/facts$1.tgz" facts-*$1*)
  for f in $R/*$1/log.jsonl; do echo "$f $(tail -1 $f | cut -c1-600)"; done
}
left() { python3 -c "print(max(0.5, ($END - $(date +%s)) / 60))"; }

DEPO="--task depo --param kmax=8"
R110="--task rule110 --window 24 --param steps=4"
FACTS="--task facts --param people=2-8 --param questions=20"
if [ "${1:-}" = continue ]; then
  for b in depo-n1:1:DEPO depo-any:1-4:DEPO r110-n1:1:R110 r110-any:1-4:R110 facts-n1:1:FACTS facts-any:1-4:FACTS; do
    IFS=: read name passes task <<< "$b"
    train $name-c 2.7 ${!task} --passes $passes --seed 5 --init $R/$name
  done
  wait; slim_and_pack -c; exit
fi
P1=${P1:-3.3}
train depo-base $P1 $DEPO --passes 1 --seed 0; b1=$!
train r110-base $P1 $R110 --passes 1 --seed 0; b2=$!
ALL=$(left)
train facts-n1 $ALL $FACTS --passes 1 --seed 3 --init runs/facts-q20
train facts-any $ALL $FACTS --passes 1-4 --seed 3 --init runs/facts-q20
train depo-any-scratch $ALL $DEPO --passes 1-4 --seed 0
train r110-any-scratch $ALL $R110 --passes 1-4 --seed 0
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait $b1 $b2
P2=$(left)
train depo-n1 $P2 $DEPO --passes 1 --seed 1 --init $R/depo-base
train depo-any $P2 $DEPO --passes 1-4 --seed 1 --init $R/depo-base
train r110-n1 $P2 $R110 --passes 1 --seed 1 --init $R/r110-base
train r110-any $P2 $R110 --passes 1-4 --seed 1 --init $R/r110-base
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
wait
slim_and_pack ""

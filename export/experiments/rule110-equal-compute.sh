#!/bin/bash
# rule110 at t = 12, lineages from the rule110-n1 shipped until 2026-11-29 (one pass, t = 4; kept as
# export/checkpoints/rule110-n1), one CPU thread each, two side by side on the 2-core box, to the
# same 267 minutes (benchmarks/sleep-depth.md, entries 26-28). ring2 and onering made the shipped
# t = 12 pair: models/rule110 and models/rule110-n1.
#   onepass: entries 6 and 13-15's stages, command for command (t = 6, 6, 8, 8, 12), then 62 more
#            minutes at t = 12. Entry 15 stopped at 205 minutes (0.711); its weights were lost.
#            Rebuilt, the first stage's tied 0/1 embeddings collapsed (entry 26), so the t = 6 stage
#            redraws them, and a third t = 6 stage (t6c) gives it the time it had not needed before.
#   ring2:   entries 24-25's K = 2 ring lineage (levels 1-2, 1-3, 1-4, then the climb to 6) with
#            new seeds (191-195): its stages stop where C's and C2's did (53 minutes), and where the
#            shipped models/rule110 did (step 1600, 74.5 minutes of a 105-minute cosine: the run was
#            started with --minutes 88, as its card says, and the session ended at 74.5; entry 27).
#   onering: one pass given the ring loss wherever one pass can have it (t = 6 and 8, on positions
#            2t-23), then t = 12 plain, to the same 267 minutes (entry 27): is it the signal or depth?
# Usage, from the repo root: bash export/experiments/rule110-equal-compute.sh onepass|ring2|onering
# Rerunning resumes the stage in progress (runs/NAME/ckpt.safetensors), and a finished stage
# returns at once (--minutes is counted on the run's own clock). Spans several sessions: a session
# that stops copies its stage in progress, with the optimizer state, into export/checkpoints/; the
# next copies it back to runs/ and runs the lines from that stage on (a finished stage whose runs/
# folder is gone would start again).
set -eu
P="${PY:-.venv/bin/python} -m export.train"
S="--task rule110 --window 24 --passes 1 --threads 1 --batch 32 --steps 1000000 --eval-every 200"  # one pass: onepass, onering
case "$1" in
onepass)
  $P $S --param steps=6 --out runs/r110-t6-n1 --init export/checkpoints/rule110-n1 --reinit-embed 0,1 --seed 21 --budget-minutes 45
  $P $S --param steps=6 --out runs/r110-t6b-n1 --init runs/r110-t6-n1 --seed 22 --budget-minutes 28
  $P $S --param steps=6 --out runs/r110-t6c-n1 --init runs/r110-t6b-n1 --seed 27 --budget-minutes 45
  $P $S --param steps=8 --out runs/r110-t8-n1 --init runs/r110-t6c-n1 --seed 23 --budget-minutes 70 --minutes 33
  $P $S --param steps=8 --out runs/r110-t8b-n1 --init runs/r110-t8-n1 --seed 24 --budget-minutes 85 --minutes 61
  $P $S --param steps=12 --out runs/r110-t12-n1 --init runs/r110-t8b-n1 --seed 25 --budget-minutes 38
  $P $S --param steps=12 --out runs/r110-t12b-n1 --init runs/r110-t12-n1 --seed 26 --budget-minutes 62
  ;;
ring2)
  R="--task rule110 --window 24 --steps-per-pass 2 --ring-loss 1 --threads 1 --batch 32 --eval-every 200"
  $P $R --param steps=6 --passes 1-2 --steps 3000 --init export/checkpoints/rule110-n1 --seed 191 --out runs/r110-k2r-1
  $P $R --param steps=6 --passes 1-3 --steps 1000000 --budget-minutes 45 --init runs/r110-k2r-1 --seed 192 --out runs/r110-k2r-2
  $P $R --param steps=8 --passes 1-4 --steps 1000000 --budget-minutes 45 --init runs/r110-k2r-2 --seed 193 --out runs/r110-k2r-3
  $P $R --param steps=12 --passes 1-6 --climb 0.1 --steps 1000000 --budget-minutes 110 --minutes 53 --init runs/r110-k2r-3 --seed 194 --out runs/r110-k2r-4
  $P $R --param steps=12 --passes 1-6 --climb 0.1 --steps 1000000 --budget-minutes 105 --minutes 74.5 --init runs/r110-k2r-4 --seed 195 --out runs/r110-k2r-5
  ;;
onering)
  $P $S --steps-per-pass 6 --ring-loss 1 --param steps=6 --init export/checkpoints/rule110-n1 --seed 31 --budget-minutes 30 --out runs/r110-o6-ring
  $P $S --steps-per-pass 8 --ring-loss 1 --param steps=8 --init runs/r110-o6-ring --seed 32 --budget-minutes 30 --out runs/r110-o8-ring
  $P $S --param steps=12 --init runs/r110-o8-ring --seed 33 --budget-minutes 207 --out runs/r110-o12
  ;;
*)
  echo "usage: $0 onepass|ring2|onering" >&2; exit 2
  ;;
esac

#!/bin/bash
# rule110 at t = 12, lineages from the rule110-n1 shipped until 2026-11-29 (one pass, t = 4; kept as
# research/checkpoints/rule110-n1), one CPU thread each, two side by side on the 2-core box, to the
# same 267 minutes (research/notebook.md, entries 26-29). ring3 and onering made the shipped
# t = 12 pair: models/rule110 and models/rule110-n1 (ring2's model, which needs six passes, was the
# rule110 shipped before; its weights are research/checkpoints/r110-k2r-5).
#   onepass: entries 6 and 13-15's stages, command for command (t = 6, 6, 8, 8, 12), then 62 more
#            minutes at t = 12. Entry 15 stopped at 205 minutes (0.711); its weights were lost.
#            Rebuilt, the first stage's tied 0/1 embeddings collapsed (entry 26), so the t = 6 stage
#            redraws them, and a third t = 6 stage (t6c) gives it the time it had not needed before.
#   ring2:   entries 24-25's K = 2 ring lineage (levels 1-2, 1-3, 1-4, then the climb to 6) with
#            new seeds (191-195): its stages stop where C's and C2's did (53 minutes), and where the
#            rule110 shipped in session 23 did (step 1600, 74.5 minutes of a 105-minute cosine: the
#            run was started with --minutes 88, and the session ended at 74.5; entry 27).
#   ring3:   the lineage of the shipped models/rule110, three steps a pass, so that N = 4 answers
#            t = 12: entry 24's K = 2 stages (seeds 91-93; only the third's weights were kept, as
#            research/checkpoints/r110-k2-ring4), entry 25's B to step 3500 (57.4 minutes; kept as
#            research/checkpoints/r110-k3-ring-b), then level 4 at lr 1e-3 to the lineage's 267 minutes
#            (entry 29).
#   onering: one pass given the ring loss wherever one pass can have it (t = 6 and 8, on positions
#            2t-23), then t = 12 plain, to the same 267 minutes (entry 27): is it the signal or depth?
#            It made the shipped models/rule110-n1.
# Usage, from the repo root: bash research/experiments/rule110-equal-compute.sh onepass|ring2|ring3|onering
# Rerunning resumes the stage in progress (runs/NAME/ckpt.safetensors), and a finished stage
# returns at once (--minutes is counted on the run's own clock). Spans several sessions: a session
# that stops copies its stage in progress, with the optimizer state, into research/checkpoints/; the
# next copies it back to runs/ and runs the lines from that stage on (a finished stage whose runs/
# folder is gone would start again).
set -eu
P="${PY:-.venv/bin/python} -m export.train"
S="--task rule110 --window 24 --passes 1 --threads 1 --batch 32 --steps 1000000 --eval-every 200"  # one pass: onepass, onering
K2="--task rule110 --window 24 --steps-per-pass 2 --ring-loss 1 --threads 1 --batch 32 --eval-every 200"
k2_levels() {  # entry 24's K = 2 ring stages, levels 1-2, 1-3, 1-4: SEED1 SEED2 SEED3 RUN1 RUN2 RUN3
  $P $K2 --param steps=6 --passes 1-2 --steps 3000 --init research/checkpoints/rule110-n1 --seed $1 --out runs/$4
  $P $K2 --param steps=6 --passes 1-3 --steps 1000000 --budget-minutes 45 --init runs/$4 --seed $2 --out runs/$5
  $P $K2 --param steps=8 --passes 1-4 --steps 1000000 --budget-minutes 45 --init runs/$5 --seed $3 --out runs/$6
}
case "$1" in
onepass)
  $P $S --param steps=6 --out runs/r110-t6-n1 --init research/checkpoints/rule110-n1 --reinit-embed 0,1 --seed 21 --budget-minutes 45
  $P $S --param steps=6 --out runs/r110-t6b-n1 --init runs/r110-t6-n1 --seed 22 --budget-minutes 28
  $P $S --param steps=6 --out runs/r110-t6c-n1 --init runs/r110-t6b-n1 --seed 27 --budget-minutes 45
  $P $S --param steps=8 --out runs/r110-t8-n1 --init runs/r110-t6c-n1 --seed 23 --budget-minutes 70 --minutes 33
  $P $S --param steps=8 --out runs/r110-t8b-n1 --init runs/r110-t8-n1 --seed 24 --budget-minutes 85 --minutes 61
  $P $S --param steps=12 --out runs/r110-t12-n1 --init runs/r110-t8b-n1 --seed 25 --budget-minutes 38
  $P $S --param steps=12 --out runs/r110-t12b-n1 --init runs/r110-t12-n1 --seed 26 --budget-minutes 62
  ;;
ring2)
  k2_levels 191 192 193 r110-k2r-1 r110-k2r-2 r110-k2r-3
  $P $K2 --param steps=12 --passes 1-6 --climb 0.1 --steps 1000000 --budget-minutes 110 --minutes 53 --init runs/r110-k2r-3 --seed 194 --out runs/r110-k2r-4
  $P $K2 --param steps=12 --passes 1-6 --climb 0.1 --steps 1000000 --budget-minutes 105 --minutes 74.5 --init runs/r110-k2r-4 --seed 195 --out runs/r110-k2r-5
  ;;
ring3)
  k2_levels 91 92 93 r110-k2-ring r110-k2-ring3 r110-k2-ring4
  K3="--task rule110 --window 24 --param steps=12 --passes 1-4 --steps-per-pass 3 --ring-loss 1 --threads 1 --batch 32 --steps 1000000 --eval-every 200"
  $P $K3 --climb 0.1 --budget-minutes 115 --minutes 57.4 --init runs/r110-k2-ring4 --seed 99 --out runs/r110-k3-ring-b
  $P $K3 --climb 0.15 --lr 1e-3 --budget-minutes 115 --minutes 83.9 --init runs/r110-k3-ring-b --seed 203 --out runs/r110-k3d-s203
  ;;
onering)
  $P $S --steps-per-pass 6 --ring-loss 1 --param steps=6 --init research/checkpoints/rule110-n1 --seed 31 --budget-minutes 30 --out runs/r110-o6-ring
  $P $S --steps-per-pass 8 --ring-loss 1 --param steps=8 --init runs/r110-o6-ring --seed 32 --budget-minutes 30 --out runs/r110-o8-ring
  $P $S --param steps=12 --init runs/r110-o8-ring --seed 33 --budget-minutes 207 --out runs/r110-o12
  ;;
*)
  echo "usage: $0 onepass|ring2|ring3|onering" >&2; exit 2
  ;;
esac

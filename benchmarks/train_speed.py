"""Training step time: the chunkwise (WY/UT) GDN forms against the per-position loop, in one run.

    .venv/bin/python -m benchmarks.train_speed [--threads 1] [--repeats 5]

One training step = Algorithm 1 on one batch (forward over every window and pass, backward,
no optimizer). Reports the median of --repeats steps per configuration and the speed-ups over
the loop, for L = 16 (the issue's target: at least 3x) and L = 64 (the shipped facts/depo
window), N = 1 and N = 4. The forms: the whole-window WY form with a triangular solve (what
training uses) and the blocked one the sleep graph exports. Writes benchmarks/results/train-speed.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from edgesleep.config import ModelArgs
from export.model import Model, delta_rule_blocks, delta_rule_chunk, delta_rule_loop


def step_seconds(model: Model, tokens: torch.Tensor, passes: int, rule, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first step warms up the allocator
        t = time.perf_counter()
        S = model.empty_state(tokens.shape[0])
        for w in range(tokens.shape[1]):
            h, S = model.sleep(tokens[:, w], S, passes, rule=rule)
        loss = model.logits(h).logsumexp(-1).mean() + sum(s.square().mean() for s in S)
        loss.backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--windows", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for L in (16, 64):
        model = Model(ModelArgs(vocab_size=128, window=L))
        tokens = torch.randint(0, 128, (args.batch, args.windows, L))
        for passes in (1, 4):
            loop, chunk, blocks = (step_seconds(model, tokens, passes, rule, args.repeats)
                                   for rule in (delta_rule_loop, delta_rule_chunk, delta_rule_blocks))
            rows.append({"L": L, "passes": passes, "loop_s": round(loop, 4), "chunkwise_s": round(chunk, 4),
                         "blocks_s": round(blocks, 4), "speedup": round(loop / chunk, 2),
                         "blocks_speedup": round(loop / blocks, 2)})
            print(f"L={L:3d} N={passes}  loop {loop:.3f} s/step  chunkwise {chunk:.3f} ({loop / chunk:.2f}x)  "
                  f"blocks {blocks:.3f} ({loop / blocks:.2f}x)", flush=True)
    out = Path(__file__).parent / "results" / "train-speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "batch": args.batch, "windows": args.windows,
                               "repeats": args.repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

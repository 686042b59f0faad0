"""Do the backends give the same answers? Held-out questions through the public API, asked as
edgesleep.eval.ask asks them, on onnx, gguf (f32) and gguf:q8_0; accuracy of each and agreement.

    .venv/bin/python -m benchmarks.gguf_agreement --model facts --examples 200

Writes benchmarks/results/gguf-agreement-<model>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgesleep
from edgesleep.cli import positive_ints
from edgesleep.eval import ask
from edgesleep.models import resolve
from edgesleep.progress import Progress
from edgesleep.tasks import get_task

BACKENDS = ["onnx", "gguf", "gguf:q8_0"]


def answers(model: Path, backend: str, passes: int, data: list) -> tuple[list[str], float]:
    with edgesleep.open(model, backend=backend, passes=passes, threads=1) as rt:
        t, got = time.perf_counter(), []
        for ex in data:
            got += ask(rt, ex)
        return got, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="facts")
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--passes", type=positive_ints, default=[1, 4])
    args = ap.parse_args()
    model = resolve(args.model)
    with edgesleep.open(model) as rt:
        task = get_task(rt.config.task["name"])
        params = task.eval_params(rt.config.task)
    rng = np.random.default_rng(args.seed)
    data = [task.sample(rng, **params) for _ in range(args.examples)]
    truth = [q.answer for ex in data for q in ex.questions]
    kinds = [q.kind for ex in data for q in ex.questions]
    result = {"model": model.name, "examples": args.examples, "seed": args.seed, "questions": len(truth),
              "accuracy": {}, "agreement_with_onnx": {}, "wall_s": {}}
    runs = [(b, n) for n in args.passes for b in BACKENDS]
    bar = Progress("backends", len(runs))
    got = {}
    for b, n in runs:
        got[b, n], secs = answers(model, b, n, data)
        key = f"{b} N={n}"
        result["accuracy"][key] = {k: round(float(np.mean([g == t for g, t, q in zip(got[b, n], truth, kinds)
                                                           if q == k])), 4) for k in sorted(set(kinds))}
        result["wall_s"][key] = round(secs, 1)
        if b != "onnx":
            result["agreement_with_onnx"][key] = round(float(np.mean(
                [x == y for x, y in zip(got[b, n], got["onnx", n])])), 4)
        bar(len(got))
    out = Path(__file__).parent / "results" / f"gguf-agreement-{model.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

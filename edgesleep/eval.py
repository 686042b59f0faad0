"""Held-out accuracy through the public API, per question kind and per number of passes.

Exactly as the evaluators of the task contract do it: feed the context, sleep (the last partial window is
consolidated and the cache cleared), then ask each question on its own with `answer`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgesleep.runtime import Runtime
from edgesleep.tasks import Example, get_task, kind_order


def ask(rt: Runtime, example: Example, passes: int | None = None) -> list[str]:
    """The evaluators' protocol for one example: a fresh state, the context fed and consolidated
    with `passes` (default: the runtime's N; the last partial window included, the cache
    cleared), then each question on its own."""
    rt.reset()
    rt.feed(example.context)
    rt.sleep(passes)
    return [rt.answer(q.text) for q in example.questions]


def evaluate(model_dir: str | Path, passes: list[int] | None = None, examples: int = 100, seed: int = 1234,
             task: str | None = None, progress: Callable[[int, int], None] | None = None,
             backend: str = "onnx") -> dict:
    """{"task", "examples", "seed", "backend", "accuracy": {N: {kind: acc}}, "counts": {kind: n}}.
    `passes` defaults to 1, 2, 4 and the deepest N the model was trained for."""
    with Runtime(model_dir, backend=backend) as rt:
        passes = passes or sorted({1, 2, 4, rt.config.deep_passes})
        name = task or rt.config.task["name"]
        if name != rt.config.task["name"]:
            raise ValueError(f"{model_dir} was trained for {rt.config.task['name']!r}, not {name!r}")
        module = get_task(name)
        rng = np.random.default_rng(seed)
        params = module.eval_params(rt.config.task)
        data = [module.sample(rng, **params) for _ in range(examples)]
        acc, counts = {}, {}
        done, total = 0, len(passes) * len(data)
        for n in passes:
            right: dict[str, int] = {}
            counts = {}
            for ex in data:
                for q, got in zip(ex.questions, ask(rt, ex, n)):
                    right[q.kind] = right.get(q.kind, 0) + (got == q.answer)
                    counts[q.kind] = counts.get(q.kind, 0) + 1
                done += 1
                if progress:
                    progress(done, total)
            acc[n] = {k: right[k] / counts[k] for k in sorted(counts, key=kind_order)}
        counts = {k: counts[k] for k in sorted(counts, key=kind_order)}
        return {"task": name, "examples": examples, "seed": seed, "backend": backend, "accuracy": acc, "counts": counts}


def measured_passes(metrics: dict) -> list[int]:
    """The N an evaluation (evaluate's dict, or a card's metrics.json, where N are strings) was run at."""
    return sorted(int(n) for n in metrics["accuracy"])

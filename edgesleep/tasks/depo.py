"""depo: k-hop retrieval on a shuffled directed cycle (the task contract, section 2).

Context: the M edges of a directed cycle over M distinct nodes, in random order, `src dst`.
Question `k<h> <src>`: the node reached from src after h edges.
"""
from __future__ import annotations

import numpy as np

from edgesleep.tasks import Example, Question

NODES = [f"n{i:02d}" for i in range(64)]
HOPS = [f"k{h}" for h in range(1, 17)]
VOCAB = NODES + HOPS
DEFAULTS = {"nodes": (8, 24)}
CONFIG_KEYS = ("kmax",)  # training parameters that define the model's task (config.json)


def eval_hops(kmax: int) -> list[int]:
    """The depths evaluation reports: 1, 2, 4, 8, and 16 where Kmax >= 16."""
    return [h for h in (1, 2, 4, 8, 16) if h <= max(kmax, 8)]


def eval_params(task: dict) -> dict:
    return {"hops": eval_hops(int(task.get("kmax", 8)))}


def sample(rng: np.random.Generator, nodes: tuple[int, int] = DEFAULTS["nodes"], kmax: int = 8,
           questions: int = 8, hops: list[int] | None = None) -> Example:
    """`hops` given: each question's h is drawn from it (evaluation); else from 1..kmax."""
    m = int(rng.integers(nodes[0], nodes[1] + 1))
    cycle = [NODES[i] for i in rng.choice(len(NODES), size=m, replace=False)]
    succ = {cycle[i]: cycle[(i + 1) % m] for i in range(m)}
    edges = [f"{a} {succ[a]}" for a in cycle]
    context = " ".join(edges[i] for i in rng.permutation(m))
    qs = []
    for _ in range(questions):
        h = int(rng.choice(hops)) if hops else int(rng.integers(1, kmax + 1))
        src = cycle[int(rng.integers(m))]
        node = src
        for _ in range(h):
            node = succ[node]
        qs.append(Question(f"k{h} {src}", node, f"h={h}"))
    return Example(context, qs)

"""rule110: the paper's cellular-automaton task (TASKS.md, section 1).

Context: 4 strings of 24 random cells (96 tokens). Question `q<i>`: the cell at index 0 of
string i after t steps of Rule 110 with a cyclic boundary. t is fixed per model (task.steps).
"""
from __future__ import annotations

import numpy as np

from edgesleep.tasks import Example, Question

STRINGS, CELLS = 4, 24
VOCAB = ["0", "1"] + [f"q{i}" for i in range(1, STRINGS + 1)]
DEFAULTS: dict = {}
CONFIG_KEYS = ("steps",)  # training parameters that define the model's task (config.json)


def step(cells: np.ndarray) -> np.ndarray:
    """One step of Rule 110, cyclic along the last axis: new[j] = bit (4 l + 2 c + r) of 110."""
    left, right = np.roll(cells, 1, axis=-1), np.roll(cells, -1, axis=-1)
    return (110 >> (4 * left + 2 * cells + right)) & 1


def kinds(steps: int) -> tuple[str, ...]:
    return (f"t={steps}",)


def eval_params(task: dict) -> dict:
    return {"steps": int(task["steps"])}


def sample(rng: np.random.Generator, steps: int = 4) -> Example:
    strings = rng.integers(0, 2, size=(STRINGS, CELLS))
    final = strings
    for _ in range(steps):  # all strings at once: training batches draw thousands of these
        final = step(final)
    questions = [Question(f"q{i}", str(int(s[0])), f"t={steps}") for i, s in enumerate(final, 1)]
    return Example(" ".join(str(int(c)) for c in strings.ravel()), questions)

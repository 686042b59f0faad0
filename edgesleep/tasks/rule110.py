"""rule110: the paper's cellular-automaton task (the task contract, section 1).

Context: 4 strings of 24 random cells (96 tokens). Question `q<i>`: the cell at index 0 of
string i after t steps of Rule 110 with a cyclic boundary. t is fixed per model (task.steps).

Training may also ask `q<i> c<j>`, the cell at index j (1-23), with the `cells` parameter:
every cell is then an answer, so the consolidated state must hold the whole ring at step t, one
format whatever t is. The task contract and evaluation ask index 0 only.
"""
from __future__ import annotations

import numpy as np

from edgesleep.tasks import Example, Question

STRINGS, CELLS = 4, 24
VOCAB = ["0", "1"] + [f"q{i}" for i in range(1, STRINGS + 1)]
TRAINING_WORDS = {"cells": [f"c{j}" for j in range(1, CELLS)]}  # words a training parameter adds
DEFAULTS: dict = {}
CONFIG_KEYS = ("steps",)  # training parameters that define the model's task (config.json)


def step(cells: np.ndarray) -> np.ndarray:
    """One step of Rule 110, cyclic along the last axis: new[j] = bit (4 l + 2 c + r) of 110."""
    left, right = np.roll(cells, 1, axis=-1), np.roll(cells, -1, axis=-1)
    return (110 >> (4 * left + 2 * cells + right)) & 1


def evolve(cells: np.ndarray, steps: int) -> np.ndarray:
    """The cells after `steps` steps; all strings at once, since training batches draw thousands."""
    for _ in range(steps):
        cells = step(cells)
    return cells


def kinds(steps: int) -> tuple[str, ...]:
    return (f"t={steps}",)


def eval_params(task: dict) -> dict:
    return {"steps": int(task["steps"])}


def sample(rng: np.random.Generator, steps: int = 4, cells: int = 0) -> Example:
    """`cells`: how many other cells (distinct indexes drawn from 1-23) each string is also asked
    about, after its index-0 question."""
    strings = rng.integers(0, 2, size=(STRINGS, CELLS))
    final = evolve(strings, steps)
    questions = []
    for i, s in enumerate(final, 1):
        questions.append(Question(f"q{i}", str(int(s[0])), f"t={steps}"))
        if cells:
            questions += [Question(f"q{i} c{j}", str(int(s[j])), f"t={steps} cell")
                          for j in 1 + rng.permutation(CELLS - 1)[:cells]]
    return Example(" ".join(str(int(c)) for c in strings.ravel()), questions)

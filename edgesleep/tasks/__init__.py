"""The benchmark tasks: generators that write exactly the text formats of the task contract.

A task yields `Example`s: a context to feed (and consolidate), then questions asked one by
one from the consolidated state, each with its one-token answer and a kind that the
evaluation reports separately (e.g. "1-hop", "2-hop", "move").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    kind: str


@dataclass(frozen=True)
class Example:
    context: str
    questions: list[Question] = field(default_factory=list)


def kind_order(kind: str) -> list:
    """Sort key for question kinds in natural order: h=2 before h=16."""
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", kind)]


def vocabulary(task, params: dict) -> list[str]:
    """The task's words, then the training-only words that its parameters ask for (rule110's
    cell words with `cells`), so that a model trained without them keeps the task contract's vocabulary."""
    extra = getattr(task, "TRAINING_WORDS", {})
    return task.VOCAB + [w for key, words in extra.items() if params.get(key) for w in words]


def get_task(name: str):
    """The task module for `name`: VOCAB, DEFAULTS (training ranges), CONFIG_KEYS (the
    training parameters config.json records, e.g. rule110's steps), sample(rng, **params),
    and eval_params(config task) -> the parameters evaluation samples with."""
    from edgesleep.tasks import depo, facts, rule110

    tasks = {"facts": facts, "depo": depo, "rule110": rule110}
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]

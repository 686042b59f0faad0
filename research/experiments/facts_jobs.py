"""Curricula tried against the facts job plateau (research/notebook.md, entry 4). Both
models answer `teacher` to every job question while every other 1-hop relation is near 100%.

    python -m research.experiments.facts_jobs --job-weight 6 -- <export.train arguments>
    python -m research.experiments.facts_jobs --job-only 0.5 -- <export.train arguments>

--job-weight W asks about jobs W times as often as about anything else; --job-only P makes a share
P of the training examples state only jobs (and distractors) and ask only about jobs. The held-out
set the trainer evaluates on (8 questions per example) is left as it is.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from edgesleep.tasks import Example, Question, facts
from export import train

HELD_OUT_QUESTIONS = 8  # export.train's held-out examples use the sampler's default


def curriculum(job_weight: float, job_only: float) -> Callable[..., Example]:
    """A facts sampler for training; calls with the held-out question count pass through."""
    plain = facts.sample

    def sample(rng: np.random.Generator, people=facts.DEFAULTS["people"], questions: int = 8, **kw) -> Example:
        if questions == HELD_OUT_QUESTIONS:
            return plain(rng, people, questions, **kw)
        if rng.random() < job_only:
            p = int(rng.integers(people[0], people[1] + 1))
            names = [str(n) for n in rng.choice(facts.PEOPLE, size=p, replace=False)]
            job = {n: str(rng.choice(facts.JOBS)) for n in names}
            order = [f"{n} works as a {job[n]} ." for n in names]
            for _ in range(int(rng.binomial(len(order), 0.25))):
                order.insert(int(rng.integers(0, len(order) + 1)), str(rng.choice(facts.DISTRACTORS)))
            asked = rng.choice(names, size=min(questions, 5 * p))  # a batch needs equal question counts
            return Example(" ".join(order), [Question(f"what is {n} 's job ?", job[n], "1-hop") for n in asked])
        ex = plain(rng, people, questions * 4, **kw)  # a larger pool, then re-drawn with job weight
        w = np.array([job_weight if q.text.endswith("'s job ?") else 1.0 for q in ex.questions])
        keep = rng.choice(len(w), size=min(questions, len(w)), replace=False, p=w / w.sum())
        return Example(ex.context, [ex.questions[i] for i in keep])

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--job-weight", type=float, default=1.0)
    ap.add_argument("--job-only", type=float, default=0.0)
    ap.add_argument("train_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    questions = train.parse_params([a for a in train_args if a.startswith("questions=")]).get("questions")
    if questions in (None, HELD_OUT_QUESTIONS):
        ap.error(f"pass --param questions=N with N != {HELD_OUT_QUESTIONS}: "
                 f"{HELD_OUT_QUESTIONS} is how this script tells the held-out set apart")
    facts.sample = curriculum(args.job_weight, args.job_only)
    train.main(train_args, launcher=f"python -m research.experiments.facts_jobs --job-weight {args.job_weight:g} "
                                    f"--job-only {args.job_only:g} --")


if __name__ == "__main__":
    main()

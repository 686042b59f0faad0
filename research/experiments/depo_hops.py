"""A depo curriculum that asks mostly the composition questions (research/notebook.md,
entry 12). With Kmax = 2 half the questions are h = 1, which the models already answer exactly,
so half the gradient carries nothing; here each training question's h is drawn from --hops.

    python -m research.experiments.depo_hops --hops 1,2,2,2 -- <export.train arguments>

The held-out set the trainer evaluates on (its own sampler call, h from 1..Kmax) is left as it is.
"""
from __future__ import annotations

import argparse

import numpy as np

from edgesleep.tasks import Example, depo
from export import train


def curriculum(hops: list[int]):
    """A depo sampler for training only: export.train's held-out set passes no `questions`."""
    plain = depo.sample

    def sample(rng: np.random.Generator, questions: int | None = None, **kw) -> Example:
        if questions is None:
            return plain(rng, **kw)
        return plain(rng, questions=questions, hops=hops, **kw)

    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hops", required=True, help="comma-separated h to draw each training question's from")
    ap.add_argument("train_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    if not any(a.startswith("questions=") for a in train_args):
        ap.error("pass --param questions=N: this script tells training batches from held-out ones by it")
    depo.sample = curriculum([int(h) for h in args.hops.split(",")])
    train.main(train_args, launcher=f"python -m research.experiments.depo_hops --hops {args.hops} --")


if __name__ == "__main__":
    main()

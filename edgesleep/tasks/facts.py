"""facts: personal memory, the local assistant's job (the task contract, section 3).

P people, each with a city, a job, a pet and a friend among the others, stated in random
order with distractors and some moves; then questions, each answered by one token.
"""
from __future__ import annotations

import numpy as np

from edgesleep.tasks import Example, Question

PEOPLE = ("alice bob carol dave erin frank grace heidi ivan judy kevin laura mallory nina "
          "oscar peggy quinn rupert sybil trent uma victor wendy xavier yara zack").split()
CITIES = "paris rome berlin madrid lisbon vienna prague oslo dublin athens warsaw zurich tokyo seoul lima quito".split()
JOBS = "baker doctor pilot farmer lawyer teacher nurse chef plumber painter writer singer".split()
PETS = "cat dog parrot rabbit turtle hamster goldfish lizard".split()
FUNCTION_WORDS = ("lives in moved to works as a has is friends with the weather nice today i had lunch "
                  "meeting was long where does live what job pet have who friend 's . ?").split()
VOCAB = list(dict.fromkeys(PEOPLE + CITIES + JOBS + PETS + FUNCTION_WORDS))
KINDS = ("1-hop", "2-hop", "move")
DISTRACTORS = ("the weather is nice today .", "i had lunch .", "the meeting was long .")
DEFAULTS = {"people": (4, 8)}
CONFIG_KEYS = ()  # training parameters that define the model's task (config.json)


def eval_params(task: dict) -> dict:
    return {}


def sample(rng: np.random.Generator, people: tuple[int, int] = DEFAULTS["people"],
           questions: int = 8, move_prob: float = 0.3, distractor_rate: float = 0.25) -> Example:
    """One example with P ~ U[people] and `questions` questions of mixed kinds."""
    p = int(rng.integers(people[0], people[1] + 1))
    names = [str(n) for n in rng.choice(PEOPLE, size=p, replace=False)]
    city = {n: str(rng.choice(CITIES)) for n in names}
    job = {n: str(rng.choice(JOBS)) for n in names}
    pet = {n: str(rng.choice(PETS)) for n in names}
    friend = {n: str(rng.choice([m for m in names if m != n])) for n in names}

    statements = [f"{n} lives in {city[n]} ." for n in names]
    statements += [f"{n} works as a {job[n]} ." for n in names]
    statements += [f"{n} has a {pet[n]} ." for n in names]
    statements += [f"{n} is friends with {friend[n]} ." for n in names]
    order = [statements[i] for i in rng.permutation(len(statements))]

    # A move goes somewhere after the person's latest statement of where they live.
    moved = set()
    for n in names:
        if rng.random() >= move_prob:
            continue
        for _ in range(1 + int(rng.random() < 0.25)):
            new = str(rng.choice([c for c in CITIES if c != city[n]]))
            latest = max(i for i, s in enumerate(order) if s.startswith((f"{n} lives in ", f"{n} moved to ")))
            order.insert(int(rng.integers(latest + 1, len(order) + 1)), f"{n} moved to {new} .")
            city[n] = new
            moved.add(n)
    for _ in range(int(rng.binomial(len(order), distractor_rate))):
        order.insert(int(rng.integers(0, len(order) + 1)), str(rng.choice(DISTRACTORS)))

    pool = []
    for n in names:
        pool.append(Question(f"where does {n} live ?", city[n], "move" if n in moved else "1-hop"))
        pool.append(Question(f"what is {n} 's job ?", job[n], "1-hop"))
        pool.append(Question(f"what pet does {n} have ?", pet[n], "1-hop"))
        pool.append(Question(f"who is {n} 's friend ?", friend[n], "1-hop"))
        pool.append(Question(f"where does {n} 's friend live ?", city[friend[n]], "2-hop"))
    picked = rng.choice(len(pool), size=min(questions, len(pool)), replace=False)
    return Example(" ".join(order), [pool[i] for i in picked])

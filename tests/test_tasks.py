"""The facts generator writes exactly the task contract's format, and its answers follow from the text."""
import re

import numpy as np
import pytest

from edgesleep.tasks import get_task
from edgesleep.tasks import facts

STATEMENT = re.compile(r"^(?:(\w+) (lives in|moved to) (\w+)|(\w+) works as a (\w+)|(\w+) has a (\w+)"
                       r"|(\w+) is friends with (\w+)|the weather is nice today|i had lunch|the meeting was long) \.$")


def answers_from_text(context: str) -> dict[str, str]:
    """An independent reader of the context: the answer every question should get."""
    city, job, pet, friend = {}, {}, {}, {}
    for s in re.findall(r"[^.]+\.", context):
        s = s.strip()
        m = STATEMENT.match(s)
        assert m, f"not a statement of the task contract: {s!r}"
        if m[1]:
            city[m[1]] = m[3]
        elif m[4]:
            job[m[4]] = m[5]
        elif m[6]:
            pet[m[6]] = m[7]
        elif m[8]:
            friend[m[8]] = m[9]
    out = {}
    for n in city:
        out[f"where does {n} live ?"] = city[n]
        out[f"what is {n} 's job ?"] = job[n]
        out[f"what pet does {n} have ?"] = pet[n]
        out[f"who is {n} 's friend ?"] = friend[n]
        out[f"where does {n} 's friend live ?"] = city[friend[n]]
    return out


@pytest.mark.parametrize("seed", range(20))
def test_facts_format_and_answers(seed):
    ex = facts.sample(np.random.default_rng(seed))
    truth = answers_from_text(ex.context)
    assert 4 <= len(truth) // 5 <= 8  # P people in [4, 8]
    assert set(ex.context.split()) <= set(facts.VOCAB)
    assert "  " not in ex.context
    for q in ex.questions:
        assert q.text.endswith(" ?") and q.answer == truth[q.text], q
        assert q.kind in facts.KINDS
        moved = f"{q.text.split()[2]} moved to" in ex.context
        if q.text.startswith("where does") and "'s friend" not in q.text:
            assert q.kind == ("move" if moved else "1-hop")


def test_moves_follow_the_first_statement():
    for seed in range(50):
        ctx = facts.sample(np.random.default_rng(seed)).context
        for name, _ in re.findall(r"(\w+) moved to (\w+)", ctx):
            assert ctx.index(f"{name} lives in") < ctx.index(f"{name} moved to")


def test_vocab_is_exactly_tasks_md():
    assert len(facts.VOCAB) == len(set(facts.VOCAB)) == 26 + 16 + 12 + 8 + len(facts.FUNCTION_WORDS)
    with pytest.raises(ValueError, match="unknown task"):
        get_task("chess")


def test_rule110_format_and_rule():
    from edgesleep.tasks import rule110

    # the table of the task contract, neighbourhood (left, centre, right) -> new centre
    table = {"111": 0, "110": 1, "101": 1, "100": 0, "011": 1, "010": 1, "001": 1, "000": 0}
    for seed in range(10):
        ex = rule110.sample(np.random.default_rng(seed), steps=3)
        cells = ex.context.split()
        assert len(cells) == 96 and set(cells) <= {"0", "1"}
        for i, q in enumerate(ex.questions, 1):
            s = [int(c) for c in cells[24 * (i - 1): 24 * i]]
            for _ in range(3):
                s = [table[f"{s[j - 1]}{s[j]}{s[(j + 1) % 24]}"] for j in range(24)]
            assert q.text == f"q{i}" and q.answer == str(s[0]) and q.kind == "t=3"


def test_rule110_training_can_ask_every_cell():
    """cells=k: after each string's index-0 question, k questions `q<i> c<j>` about distinct other
    cells of the same string at the same t."""
    from edgesleep.tasks import rule110, vocabulary

    asked = set()
    for seed in range(10):
        ex = rule110.sample(np.random.default_rng(seed), steps=2, cells=5)
        final = rule110.step(rule110.step(np.array(ex.context.split(), dtype=int).reshape(4, 24)))
        assert len(ex.questions) == 4 * 6
        for i in range(4):
            first, *others = ex.questions[6 * i: 6 * i + 6]
            assert first.text == f"q{i + 1}" and first.answer == str(final[i, 0]) and first.kind == "t=2"
            cells = [int(q.text.split()[1][1:]) for q in others]
            assert len(set(cells)) == 5 and all(1 <= j <= 23 for j in cells)
            for q, j in zip(others, cells):
                assert q.text == f"q{i + 1} c{j}" and q.answer == str(final[i, j]) and q.kind == "t=2 cell"
            asked.update(cells)
    assert asked == set(range(1, 24))
    ex = rule110.sample(np.random.default_rng(0), steps=2, cells=23)
    words = vocabulary(rule110, {"cells": 23})
    assert all(w in words for q in ex.questions for w in q.text.split())
    assert vocabulary(rule110, {"steps": 2}) == rule110.VOCAB == ["0", "1", "q1", "q2", "q3", "q4"]


def test_depo_format_and_hops():
    from edgesleep.tasks import depo

    for seed in range(10):
        ex = depo.sample(np.random.default_rng(seed), hops=[1, 2, 4, 8])
        words = ex.context.split()
        edges = dict(zip(words[0::2], words[1::2]))
        assert 8 <= len(edges) <= 24 and len(words) == 2 * len(edges)
        node, seen = words[0], []
        for _ in range(len(edges)):
            seen.append(node)
            node = edges[node]
        assert node == words[0] and sorted(seen) == sorted(edges)  # one cycle through every node
        for q in ex.questions:
            hop, src = q.text.split()
            node = src
            for _ in range(int(hop[1:])):
                node = edges[node]
            assert q.answer == node and q.kind == f"h={hop[1:]}" and int(hop[1:]) in (1, 2, 4, 8)
    assert depo.eval_hops(16) == [1, 2, 4, 8, 16] and depo.eval_hops(4) == [1, 2, 4, 8]

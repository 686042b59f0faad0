"""The shipped models, end to end through the public API, on fresh held-out data (a seed that
no card or training run used): what the cards claim reproduces, deeper sleep answers what
light sleep cannot, and a forgotten fact is no longer recalled."""
import functools
import json

import numpy as np
import pytest

import edgesleep
from edgesleep.eval import ask
from edgesleep.tasks import facts, get_task

from conftest import SHIPPED

SEED = 99
MODELS = sorted(p.name for p in SHIPPED.iterdir() if (p / "metrics.json").exists())


@functools.cache  # several tests read the same model at the same depth, on the same examples
def answers(model: str, passes: int, examples: int) -> tuple[dict[str, int], dict[str, int]]:
    """Per question kind, how many were answered right and how many were asked, each question
    asked on its own from the consolidated fast weights."""
    with edgesleep.open(SHIPPED / model, passes=passes) as rt:
        task = get_task(rt.config.task["name"])
        rng = np.random.default_rng(SEED)
        right: dict[str, int] = {}
        total: dict[str, int] = {}
        for _ in range(examples):
            ex = task.sample(rng, **task.eval_params(rt.config.task))
            got = ask(rt, ex)
            assert rt.status()["window"]["fill"] == 0  # nothing left in the attention cache
            for q, a in zip(ex.questions, got):
                right[q.kind] = right.get(q.kind, 0) + (a == q.answer)
                total[q.kind] = total.get(q.kind, 0) + 1
    return right, total


def accuracy(model: str, passes: int, examples: int) -> dict[str, float]:
    right, total = answers(model, passes, examples)
    return {k: right[k] / total[k] for k in total}


@pytest.mark.parametrize("model", MODELS)
def test_card_reproduces_on_fresh_data(model):
    """Within 0.15, or 4 binomial standard errors of the questions asked where that is wider: the
    questions of one example share one S and vary together, and mid-range accuracies crossed the
    flat margin by chance (an N = 1 model slept at N = 4: 0.375 on these 20 examples, 0.20-0.24 on
    200 from each of three seeds). A broken export still fails: every model answers its easiest
    kind (1-hop, or rule110's one cell) far above chance at the N where its card is best, which is
    checked too (rule110 answers its t = 12 only at N = 4)."""
    card = json.loads((SHIPPED / model / "metrics.json").read_text())
    best = max(card["accuracy"], key=lambda n: sum(card["accuracy"][n].values()))
    for n in sorted({1, 4, int(best)}):
        acc, asked = accuracy(model, n, examples=20), answers(model, n, examples=20)[1]
        for kind, claimed in card["accuracy"][str(n)].items():
            if card["counts"][kind] >= 50:  # rarer kinds are too noisy on 20 examples
                margin = max(0.15, 4 * (claimed * (1 - claimed) / asked[kind]) ** 0.5)
                assert abs(acc[kind] - claimed) < margin, (model, n, kind, acc[kind], claimed, margin)


def test_deep_sleep_answers_two_hop_questions_light_sleep_cannot():
    """The project's claim on its own models: on 2-hop questions about evicted context,
    models/facts slept at N=4 beats itself at N=1, and beats models/facts-n1 (trained with N=1
    only, the paper's baseline) at N=1."""
    deep = accuracy("facts", 4, examples=40)["2-hop"]
    light = accuracy("facts", 1, examples=40)["2-hop"]
    baseline = accuracy("facts-n1", 1, examples=40)["2-hop"]
    assert deep > light + 0.1, (deep, light)
    assert deep > baseline + 0.1, (deep, baseline)


def test_deep_sleep_answers_four_hop_questions_one_pass_cannot():
    """The issue's depo target on the shipped pair: models/depo slept at N=4 answers 4-hop
    questions about evicted context at least 15 points above models/depo-n1 (trained at N=1 for
    the same FLOPs) at N=1; and, being anytime, it already answers most 2-hop questions at N=2."""
    deep = accuracy("depo", 4, examples=20)["h=4"]
    baseline = accuracy("depo-n1", 1, examples=20)["h=4"]
    assert deep > baseline + 0.15, (deep, baseline)
    assert accuracy("depo", 2, examples=20)["h=2"] > 0.75


def test_deep_sleep_answers_rule110_at_t12_one_pass_cannot():
    """The issue's rule110 target on the shipped pair, at t = 12, where cell 0 depends on the whole
    ring: models/rule110 steps the automaton three cells a pass, so four passes answer it, at least
    10 points above models/rule110-n1 (one pass, trained as many CPU minutes from the same start)
    at N = 1; three passes answer only t = 9, so at t = 12 they are near chance."""
    deep = accuracy("rule110", 4, examples=20)["t=12"]
    baseline = accuracy("rule110-n1", 1, examples=20)["t=12"]
    assert deep > 0.7 and deep > baseline + 0.1, (deep, baseline)
    assert accuracy("rule110", 3, examples=20)["t=12"] < 0.65


@pytest.mark.parametrize("passes", [1, 4])
def test_depo_recalls_every_edge_after_eviction(passes):
    """1-hop recall on depo from the fast weights alone, light and deep: the window token and
    pi-scaled RoPE let the model tell where an edge starts (research/notebook.md); without them it
    stayed near 0.70."""
    assert accuracy("depo", passes, examples=20)["h=1"] >= 0.95


def test_forgotten_fact_is_no_longer_recalled(tmp_path):
    """Feed an example statement by statement, forget two facts that the model recalls, and
    check that both are gone while the other recalled facts stay. Only answers that differ
    from the model's guess for a stranger count as recalled: that guess (its prior) is what a
    forgotten fact falls back to."""
    ex = facts.sample(np.random.default_rng(SEED), people=(6, 6))
    statements = [s.strip() for s in ex.context.split(" .") if s.strip()]
    ask = {"has": "what pet does {} have ?", "is": "who is {} 's friend ?", "works": "what is {} 's job ?"}
    questions = {s: (ask[s.split()[1]].format(s.split()[0]), s.split()[-1])  # statement -> (question, answer)
                 for s in statements if s.split()[0] in facts.PEOPLE and s.split()[1] in ask}
    stranger = next(p for p in facts.PEOPLE if p not in ex.context.split())
    with edgesleep.open(SHIPPED / "facts", memory=tmp_path / "m", passes=4) as rt:
        for s in statements:
            rt.feed(s + " .")
        rt.sleep()
        prior = {rt.answer(q.format(stranger)) for q in ask.values()}
        recalled = [s for s, (q, a) in questions.items() if rt.answer(q) == a and a not in prior]
        forgotten = recalled[:2]
        assert len(recalled) >= 6, recalled
        for s in forgotten:
            assert rt.forget(s) == 1
        rt.sleep()
        for s in forgotten:
            q, a = questions[s]
            assert rt.answer(q) != a, q
        kept = recalled[2:]
        still = sum(rt.answer(questions[s][0]) == questions[s][1] for s in kept)
        assert still >= 0.8 * len(kept), (still, len(kept))


def test_eval_table_lists_hops_in_order(capsys):
    """`edgesleep eval` on depo: columns h=1, 2, 4, 8 in that order (not as first met)."""
    from edgesleep.cli import main as cli

    cli(["eval", "--model", str(SHIPPED / "depo"), "--task", "depo", "--passes", "1", "--examples", "3"])
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["passes", "h=1", "h=2", "h=4", "h=8"]

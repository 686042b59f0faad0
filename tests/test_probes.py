"""benchmarks/probes.py's split of two-hop questions by statement order."""
import pytest

pytest.importorskip("torch")

from benchmarks.probes import second_fact_first  # noqa: E402
from edgesleep.tasks import Example  # noqa: E402


def test_depo_second_edge_before_or_after_the_first():
    cycle = Example("n01 n02 n02 n03 n03 n01", [])  # edges in the order a b, b c, c a
    assert second_fact_first(cycle, "k2 n01") is False  # `n02 n03` comes after `n01 n02`
    assert second_fact_first(cycle, "k2 n03") is True  # `n01 n02` comes before `n03 n01`
    assert second_fact_first(cycle, "k1 n01") is None


def test_facts_friend_city_counts_the_latest_move():
    q = "where does alice 's friend live ?"
    stated = "bob lives in rome . alice is friends with bob ."
    assert second_fact_first(Example(stated, []), q) is True
    assert second_fact_first(Example(stated + " bob moved to oslo .", []), q) is False
    assert second_fact_first(Example(stated, []), "who is alice 's friend ?") is None

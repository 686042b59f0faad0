"""benchmarks/accuracy.py: one table over models evaluated at different N."""
from benchmarks.accuracy import table


def test_table_has_a_column_for_every_n_and_blanks_where_a_model_lacks_one():
    results = {"facts": {"counts": {"1-hop": 9}, "accuracy": {"1": {"1-hop": 0.5}, "8": {"1-hop": 0.25}}},
               "rule110": {"counts": {"t=12": 9}, "accuracy": {"1": {"t=12": 0.5}, "6": {"t=12": 0.75}}}}
    baselines = {"facts": {"baselines": {"full": {"accuracy": {"1-hop": 0.125}}}}}
    assert table(results, baselines).splitlines() == [
        "| model | question | N = 1 | N = 6 | N = 8 |",
        "|---|---|---|---|---|",
        "| `facts` | 1-hop | 0.500 |  | 0.250 |",
        "| `rule110` | t=12 | 0.500 | 0.750 |  |",
        "| facts baseline: full | 1-hop | 0.125 (no sleep) | | |",
    ]

"""benchmarks/curves.py: which evals of a run's log a curve reads."""
import json

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("torch")  # curves reads --passes with export.train's parser

from benchmarks.curves import curve  # noqa: E402


def test_curve_reads_the_runs_deepest_n_or_the_one_named(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"passes": "1-3"}))
    log = [{"step": 10, "loss": 1.0, "elapsed": 30.0},
           {"step": 20, "elapsed": 60.0, "eval": {"1": {"h=2": 0.1}, "3": {"h=2": 0.4}}},
           {"step": 40, "elapsed": 120.0, "eval": {"1": {"h=2": 0.2}, "3": {"h=2": 0.5}}}]
    (tmp_path / "log.jsonl").write_text("\n".join(map(json.dumps, log)) + "\n")
    assert curve(tmp_path, None, "h=2") == (3, [1.0, 2.0], [0.4, 0.5])
    assert curve(tmp_path, 1, "h=2") == (1, [1.0, 2.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="no held-out h=4 at N = 2"):
        curve(tmp_path, 2, "h=4")

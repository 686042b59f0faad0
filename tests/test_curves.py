"""research/curves.py: which evals of a run's log a curve reads."""
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("torch")  # curves reads --passes with export.train's parser

from research.curves import curve, parse_run  # noqa: E402


def test_curve_reads_the_runs_deepest_n_or_the_one_named(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"passes": "1-3"}))
    log = [{"step": 10, "loss": 1.0, "elapsed": 30.0},
           {"step": 20, "elapsed": 60.0, "eval": {"1": {"h=2": 0.1}, "3": {"h=2": 0.4}}},
           {"step": 40, "elapsed": 120.0, "eval": {"1": {"h=2": 0.2}, "3": {"h=2": 0.5}}}]
    (tmp_path / "log.jsonl").write_text("\n".join(map(json.dumps, log)) + "\n")
    assert curve(tmp_path, None, ["h=2"]) == (3, {"h=2": ([1.0, 2.0], [0.4, 0.5])})
    assert curve(tmp_path, 1, ["h=2"], start=10) == (1, {"h=2": ([11.0, 12.0], [0.1, 0.2])})
    with pytest.raises(ValueError, match="no held-out h=4 at N = 3"):
        curve(tmp_path, 3, ["h=2", "h=4"])


def test_run_specs_name_the_n_and_the_lineages_start():
    assert parse_run("runs/a") == (Path("runs/a"), None, 0.0)
    assert parse_run("runs/a:4") == (Path("runs/a"), 4, 0.0)
    assert parse_run("runs/a@167") == (Path("runs/a"), None, 167.0)
    assert parse_run("runs/a:6@179.5") == (Path("runs/a"), 6, 179.5)

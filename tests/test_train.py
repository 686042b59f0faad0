"""A few steps of Algorithm 1 on facts: the loss falls, and the run resumes from its checkpoint."""
import json

import pytest

pytest.importorskip("torch")

from export.train import main  # noqa: E402

ARGS = ["--task", "facts", "--batch", "8", "--d-model", "32", "--window", "32", "--warmup", "5",
        "--lr", "3e-3", "--eval-every", "1000", "--eval-examples", "8", "--threads", "1", "--passes", "1-2"]


def test_loss_falls_and_resumes(tmp_path):
    main(["--out", str(tmp_path), "--steps", "40", *ARGS])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))
    first = sum(r["loss"] for r in log[:5]) / 5
    last = sum(r["loss"] for r in log[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert "eval" in log[-1]

    main(["--out", str(tmp_path), "--steps", "42", *ARGS])  # resumes at step 40
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log[-2:]] == [41, 42]

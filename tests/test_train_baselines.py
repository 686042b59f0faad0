"""The accuracy baselines: the packed full-context pass equals asking each question on its own,
the held-out set is edgesleep/eval.py's, and a few steps of each kind train and score."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgesleep.tasks import facts  # noqa: E402
from edgesleep.tokenizer import Tokenizer  # noqa: E402
from export.model import Model  # noqa: E402
from export.train import make_batch  # noqa: E402
from benchmarks.train_baselines import attention_only, full_logits, heldout_batches, main, pack  # noqa: E402

TOK = Tokenizer.from_words(facts.VOCAB)


def test_packed_questions_equal_one_sequence_each():
    torch.manual_seed(0)
    model = Model(attention_only(len(TOK), 32, 16))
    # P varies per example so that contexts differ in length and the left padding matters.
    batch = make_batch(facts, TOK, np.random.default_rng(0), 3, 16, {"people": (2, 4), "questions": 5})
    packed = full_logits(model, pack(batch, TOK.pad_id))
    for n in range(len(batch["answers"])):
        e = n // batch["per_example"]
        context = batch["tokens"][e].flatten()[batch["mask"][e].flatten().bool()]
        seq = torch.cat([context, batch["q_tokens"][n, : batch["q_last"][n] + 1]])
        h, _ = model.window(model.embed(seq[None]), [])
        torch.testing.assert_close(packed[n], model.logits(h[0, -1]), atol=1e-5, rtol=1e-5)


def test_heldout_is_the_model_cards_set():
    rng = np.random.default_rng(1234)
    expected = [TOK.vocab[q.answer] for _ in range(20) for q in facts.sample(rng).questions]
    batches = heldout_batches(facts, TOK, 64, {"name": "facts"}, examples=20, chunk=8)
    assert [a for b in batches for a in b["answers"].tolist()] == expected


@pytest.mark.parametrize("kind", ["full", "window"])
def test_few_steps_run_and_score(tmp_path, kind):
    results = tmp_path / "results.json"
    main(["--kind", kind, "--out", str(tmp_path / kind), "--steps", "6", "--batch", "4", "--d-model", "32",
          "--window", "16", "--warmup", "2", "--eval-every", "3", "--eval-examples", "4",
          "--heldout-examples", "4", "--param", "people=2-3", "--threads", "1", "--results", str(results)])
    log = [json.loads(line) for line in (tmp_path / kind / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    assert all(math.isfinite(r["loss"]) for r in log) and "eval" in log[-1]
    assert (tmp_path / kind / "ckpt.safetensors").exists()
    data = json.loads(results.read_text())
    assert data["examples"] == 4 and data["seed"] == 1234
    assert set(data["baselines"][kind]["accuracy"]) == set(data["counts"]) and set(data["counts"]) <= set(facts.KINDS)
    assert data["baselines"][kind]["train"]["steps"] == 6

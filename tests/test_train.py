"""A few steps of Algorithm 1 on facts: the loss falls, and the run resumes from its checkpoint."""
import json

import pytest

pytest.importorskip("torch")

from conftest import SHIPPED  # noqa: E402
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

    with (tmp_path / "log.jsonl").open("a") as f:  # steps logged by a run killed after its checkpoint
        f.write(json.dumps({"step": 41, "loss": 9.0}) + "\n")
    main(["--out", str(tmp_path), "--steps", "42", *ARGS])  # resumes at step 40, runs step 41 again
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 43)) and log[40]["loss"] != 9.0


def test_a_run_past_its_minutes_stops_and_stays_stopped(tmp_path):
    """--minutes stops a run with a checkpoint; rerunning the command (as a runner script does)
    must not take one more step each time."""
    args = ["--out", str(tmp_path), "--steps", "40", "--minutes", "0.0001", *ARGS]
    main(args)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    before = (tmp_path / "ckpt.safetensors").read_bytes()
    main(args)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    assert (tmp_path / "ckpt.safetensors").read_bytes() == before


def test_lineage_counts_each_stage_up_to_its_warm_start(tmp_path):
    """A card's stages: a parent counts only up to the step its child started from, and a parent
    that is nowhere (made on another machine) ends the chain, marked missing."""
    import json

    from export.build import lineage

    def run(name, init=None, init_step=None, steps=0):
        d = tmp_path / name
        d.mkdir()
        (d / "args.json").write_text(json.dumps({"argv": ["--out", name], "passes": "1", "batch": 16, "seed": 0,
                                                 "init": init, "init_step": init_step}))
        (d / "log.jsonl").write_text("".join(json.dumps({"step": s, "elapsed": 2.0 * s}) + "\n"
                                             for s in range(1, steps + 1)))

    run("base", init="/elsewhere/gone", init_step=5, steps=10)
    run("branch", init="/lease/tmp/base", init_step=6, steps=3)  # found beside it, by name
    stages = lineage(tmp_path / "branch")
    assert [s["run"] for s in stages] == ["gone", "base", "branch"]
    assert stages[0].get("missing") and stages[0]["steps"] == 5
    assert (stages[1]["steps"], stages[1]["wall_s"]) == (6, 12)  # base trained on to 10 after the branch
    assert stages[2]["steps"] == 3
    # built from the branch's checkpoint at step 2 (stopped by hand after logging step 3)
    assert lineage(tmp_path / "branch", upto=2)[2]["steps"] == 2
    assert stages[2]["command"] == "python -m export.train --out branch"
    # a run started through a curriculum wrapper records its own command
    args = json.loads((tmp_path / "branch" / "args.json").read_text())
    (tmp_path / "branch" / "args.json").write_text(json.dumps({**args, "command": "python -m wrapper -- --out branch"}))
    assert lineage(tmp_path / "branch")[2]["command"] == "python -m wrapper -- --out branch"


def test_redrawn_rows_are_spread_at_the_usual_norm():
    """--reinit-embed's redraw: rows that had collapsed to one point get distinct directions at
    the other rows' mean norm; the other rows stay as they were."""
    import torch

    from export.train import redraw_rows

    torch.manual_seed(0)
    w = torch.randn(20, 16) * 2
    w[[3, 5, 7]] = 0.01  # a collapsed class
    before = w.clone()
    redraw_rows(w, [3, 5, 7])
    rows = w[[3, 5, 7]]
    keep = [i for i in range(20) if i not in (3, 5, 7)]
    torch.testing.assert_close(w[keep], before[keep])
    torch.testing.assert_close(rows.norm(dim=1), before[keep].norm(dim=1).mean().expand(3))
    assert (rows - rows.mean(0)).norm(dim=1).min() > 1.0

    # --reinit-near: around a donor class's centre, at its spread
    donors = [10, 11, 12, 13]
    w[donors] = torch.tensor([5.0] * 16) + torch.randn(4, 16) * 0.1
    redraw_rows(w, [3, 5, 7], near=donors)
    centre = w[donors].mean(0)
    spread = (w[donors] - centre).norm(dim=1).mean()
    torch.testing.assert_close((w[[3, 5, 7]] - centre).norm(dim=1), spread.expand(3))


def test_reinit_embed_needs_a_warm_start(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--steps", "1", "--reinit-embed", "baker", *ARGS])


def test_window_token_batches_and_warm_start(tmp_path):
    """--window-token: <w> opens every window (L - 1 tokens of text each) and every question,
    and a warm start from a run without it keeps every old row and adds one fresh row."""
    import numpy as np
    from safetensors.torch import load_file

    from edgesleep.tasks import depo
    from edgesleep.tokenizer import Tokenizer
    from export.train import make_batch

    tok = Tokenizer.from_words(depo.VOCAB, window_token=True)
    assert tok.window_id == len(tok) - 1 and Tokenizer.from_words(depo.VOCAB).vocab == \
        {w: i for w, i in tok.vocab.items() if i != tok.window_id}
    batch = make_batch(depo, tok, np.random.default_rng(0), 4, 8, {"nodes": (8, 8)})  # 16 tokens: 3 windows
    text = tok.encode(depo.sample(np.random.default_rng(0), nodes=(8, 8)).context)
    assert batch["tokens"][0, :, 0].tolist() == [tok.window_id] * 3
    assert batch["tokens"][0, :, 1:].flatten()[:16].tolist() == text
    assert batch["mask"][0].sum() == 16 + 3 and (batch["q_tokens"][:, 0] == tok.window_id).all()

    depo_args = ["--task", "depo", "--batch", "4", "--d-model", "32", "--window", "16", "--eval-every", "1000",
                 "--eval-examples", "4", "--threads", "1", "--param", "nodes=4-6"]
    main(["--out", str(tmp_path / "a"), "--steps", "1", *depo_args], launcher="python -m some.wrapper --")
    assert json.loads((tmp_path / "a" / "args.json").read_text())["command"].startswith(
        "python -m some.wrapper -- --out ")
    main(["--out", str(tmp_path / "b"), "--steps", "1", "--lr", "0", "--init", str(tmp_path / "a"),
          "--window-token", "--rope-scale", "pi", *depo_args])
    old, new = (load_file(str(tmp_path / r / "ckpt.safetensors"))["model.embed.weight"] for r in "ab")
    assert new.shape[0] == old.shape[0] + 1
    assert (new[:-1] == old).all() and new[-1].norm() > 0.5 * old.norm(dim=1).mean()
    model = json.loads((tmp_path / "b" / "args.json").read_text())["model"]
    assert model["window_token"] == old.shape[0] and abs(model["rope_scale"] - 3.14159) < 1e-5


def test_drop_state_zeroes_at_most_one_layer_per_example():
    """Fast-weight dropout: about a share p of the examples lose exactly one GDN layer's S, and
    every other S is passed through untouched."""
    import numpy as np
    import torch

    from export.train import drop_state

    S = [torch.rand(400, 2, 4, 4) + 1 for _ in range(2)]
    out = drop_state(S, 0.5, np.random.default_rng(0))
    zeroed = torch.stack([(o == 0).flatten(1).all(1) for o in out])  # (layers, examples)
    kept = torch.tensor([[torch.equal(o[b], s[b]) for b in range(400)] for o, s in zip(out, S)])
    assert (zeroed | kept).all() and zeroed.sum(0).max() == 1
    assert 0.4 < zeroed.any(0).float().mean() < 0.6
    assert zeroed[0].sum() > 50 and zeroed[1].sum() > 50  # both layers get dropped
    assert all(torch.equal(o, s) for o, s in zip(drop_state(S, 0.0, np.random.default_rng(0)), S))


@pytest.mark.parametrize("one_pass", [False, True])
def test_steps_per_pass_asks_each_batch_about_k_times_its_n(tmp_path, monkeypatch, one_pass):
    """--steps-per-pass K: every training batch is consolidated with one N and asks about t = K*N;
    the held-out set keeps the task's t. --one-pass asks the same questions after one pass."""
    import export.train as train
    from edgesleep.tasks import rule110

    calls, sample, consolidate = [], rule110.sample, train.consolidate
    monkeypatch.setattr(rule110, "sample", lambda rng, steps, **kw: calls.append(("t", steps)) or sample(rng, steps, **kw))
    monkeypatch.setattr(train, "consolidate", lambda m, b, n, *t: calls.append(("N", n)) or consolidate(m, b, n, *t))
    main(["--task", "rule110", "--param", "steps=6", "--steps-per-pass", "2", "--passes", "1-3", "--out", str(tmp_path),
          "--steps", "6", "--batch", "4", "--d-model", "32", "--window", "24", "--eval-every", "1000",
          "--eval-examples", "4", "--threads", "1"] + ["--one-pass"] * one_pass)
    assert calls[:4] == [("t", 6)] * 4  # held out
    steps = [calls[i: i + 5] for i in range(4, 4 + 6 * 5, 5)]  # 4 samples, then consolidation, per step
    for step in steps:
        (_, n), ts = step[-1], {t for _, t in step[:-1]}
        assert isinstance(n, int) and len(ts) == 1 and (n == 1 if one_pass else ts == {2 * n}), step
    assert len({s[0][1] for s in steps}) > 1  # t (and so N) is drawn, not fixed
    assert [n for _, n in calls[4 + 6 * 5:]] == [1, 2, 3, 4]  # the final eval: fixed N, held-out t


def test_steps_per_pass_keeps_the_other_task_parameters(tmp_path, monkeypatch):
    """rule110's cells parameter reaches the training batches of the curriculum, not the held-out
    set, which asks what evaluation asks."""
    from edgesleep.tasks import rule110

    calls, sample = [], rule110.sample
    monkeypatch.setattr(rule110, "sample", lambda rng, steps, **kw: calls.append(kw) or sample(rng, steps, **kw))
    main(["--task", "rule110", "--param", "steps=2", "--param", "cells=3", "--steps-per-pass", "1", "--passes", "1-2",
          "--out", str(tmp_path), "--steps", "2", "--batch", "2", "--d-model", "32", "--window", "24",
          "--eval-every", "1000", "--eval-examples", "2", "--threads", "1"])
    assert calls[:2] == [{}, {}] and calls[2:] == [{"cells": 3}] * 4


def test_steps_per_pass_is_for_rule110(tmp_path):
    with pytest.raises(SystemExit):
        main(["--task", "facts", "--steps-per-pass", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--task", "rule110", "--one-pass", "--out", str(tmp_path)])


def test_ring_loss_reads_each_pass_as_the_ring_k_steps_on():
    """--ring-loss's target after pass n at position p is cell p - k n at step k n. Features that
    are exactly those cells' embeddings (with a sharp final norm) score near zero; the same cells
    unshifted, or one step short, score far worse. Pass 1's first 2k positions are not scored."""
    import numpy as np
    import torch

    from edgesleep.config import ModelArgs
    from edgesleep.tasks import rule110
    from export.model import Model
    from export.train import make_batch, ring_loss, run_tokenizer

    tok = run_tokenizer({"task": "rule110", "param": []})
    torch.manual_seed(0)
    model = Model(ModelArgs(vocab_size=len(tok), d_model=32, window=24))
    with torch.no_grad():
        model.norm.weight.fill_(200.0)
    batch = make_batch(rule110, tok, np.random.default_rng(0), 8, 24, {"steps": 2})
    one, zero, k = tok.vocab["1"], tok.vocab["0"], 2

    def trace(shift: int, short: int = 0) -> dict:
        out = {}
        for w in range(batch["tokens"].shape[1]):
            cells = (batch["tokens"][:, w] == one).long().numpy()
            out[w] = []
            for n in (1, 2, 3):
                ring = torch.as_tensor(np.roll(rule110.evolve(cells, k * n - short), shift * n, axis=1))
                ids = torch.where(ring == 1, one, zero)
                if n == 1:
                    ids[:, : 2 * k] = one + zero - ids[:, : 2 * k]  # wrong where pass 1 cannot know
                out[w].append(model.embed(ids).detach())
        return out

    with torch.no_grad():
        right = ring_loss(model, batch, trace(k), k, tok).item()
        unshifted = ring_loss(model, batch, trace(0), k, tok).item()
        behind = ring_loss(model, batch, trace(k, short=1), k, tok).item()
    assert right < 0.05 and unshifted > 10 * max(right, 0.05) and behind > 10 * max(right, 0.05), (right, unshifted, behind)


def test_ring_loss_trains_and_is_logged(tmp_path):
    main(["--task", "rule110", "--param", "steps=2", "--steps-per-pass", "1", "--passes", "1-2", "--ring-loss", "1",
          "--out", str(tmp_path), "--steps", "3", "--batch", "2", "--d-model", "32", "--window", "24",
          "--eval-every", "1000", "--eval-examples", "2", "--threads", "1"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(0 < r["ring_loss"] < r["loss"] for r in log)
    for bad in (["--passes", "1-2"], ["--steps-per-pass", "1", "--window-token"], ["--steps-per-pass", "1", "--window", "25"]):
        with pytest.raises(SystemExit):
            main(["--task", "rule110", "--ring-loss", "1", "--out", str(tmp_path / "bad"), *bad])


def test_warm_start_from_a_shipped_model_keeps_its_lineage(tmp_path):
    """--init takes a model folder: training starts from its weights (the first loss is the
    shipped model's, far below chance: rule110 answers t = 9 in three passes), and a model built
    from the run lists the shipped stages."""
    from export.build import lineage

    shipped = SHIPPED / "rule110"
    main(["--task", "rule110", "--param", "steps=9", "--passes", "3", "--window", "24", "--init", str(shipped),
          "--out", str(tmp_path), "--steps", "1", "--batch", "16", "--lr", "0", "--eval-every", "1000",
          "--eval-examples", "16", "--threads", "1"])
    first = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert first["loss"] < 0.3 and first["eval"]["3"]["t=9"] > 0.85, first
    stages = lineage(tmp_path)
    shipped_stages = json.loads((shipped / "config.json").read_text())["train"]["stages"]
    assert stages[:-1] == shipped_stages and stages[-1]["run"] == tmp_path.name


def test_climb_moves_the_frontier_up_and_resumes_there(tmp_path, monkeypatch):
    """--climb: N is drawn from the frontier level F and the one below; F moves up when its batches'
    loss is under the threshold (always, at 100), stops at the top of --passes, and a resumed run
    starts from the F it saved. The log records F."""
    import export.train as train

    drawn, consolidate = [], train.consolidate
    monkeypatch.setattr(train, "consolidate", lambda m, b, n, *t: drawn.append(n) or consolidate(m, b, n, *t))
    args = ["--task", "rule110", "--param", "steps=3", "--steps-per-pass", "1", "--passes", "1-3", "--out",
            str(tmp_path), "--batch", "4", "--d-model", "32", "--window", "24", "--eval-every", "1000",
            "--eval-examples", "4", "--threads", "1"]
    main(args + ["--steps", "12", "--climb", "100"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    levels = [r["level"] for r in log]
    assert levels == sorted(levels) and levels[0] == 2 and levels[-1] == 3  # step 1 is at F = 1: up at once
    in_effect = [1] + levels[:-1]  # the frontier when each batch was drawn
    assert all(n in (max(1, f - 1), f) for n, f in zip(drawn[:12], in_effect)), (drawn, levels)
    drawn.clear()
    main(args + ["--steps", "16", "--climb", "1e-9"])  # resumed: F stays where it was saved
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["level"] for r in log[12:]] == [3] * 4 and set(drawn[:4]) <= {2, 3}


def test_climb_waits_while_the_frontier_loss_is_high(tmp_path):
    main(["--task", "rule110", "--param", "steps=2", "--steps-per-pass", "1", "--passes", "1-2", "--out",
          str(tmp_path), "--batch", "4", "--d-model", "32", "--window", "24", "--eval-every", "1000",
          "--eval-examples", "4", "--threads", "1", "--steps", "4", "--climb", "1e-9"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["level"] for r in log] == [1] * 4


def test_warm_start_moves_rows_by_word(tmp_path):
    """A start with <w> (its last row) into a model that also has rule110's cell words, which come
    before <w>: every word keeps its own row, and only the cell words get fresh ones."""
    import torch
    from safetensors.torch import load_file

    from export.train import run_tokenizer

    r110 = ["--task", "rule110", "--param", "steps=2", "--batch", "2", "--d-model", "32", "--window", "25",
            "--window-token", "--eval-every", "1000", "--eval-examples", "2", "--threads", "1", "--steps", "1"]
    main(["--out", str(tmp_path / "a"), *r110])
    main(["--out", str(tmp_path / "b"), "--lr", "0", "--init", str(tmp_path / "a"), "--param", "cells=2", *r110])
    runs = [json.loads((tmp_path / r / "args.json").read_text()) for r in "ab"]
    (old_tok, new_tok), (old, new) = map(run_tokenizer, runs), \
        (load_file(str(tmp_path / r / "ckpt.safetensors"))["model.embed.weight"] for r in "ab")
    assert len(old) == 9 and len(new) == 32 and old_tok.window_id == 8 and new_tok.window_id == 31
    for word, i in old_tok.vocab.items():
        assert torch.equal(new[new_tok.vocab[word]], old[i]), word
    cells = [new_tok.vocab[f"c{j}"] for j in range(1, 24)]
    assert all(new[i].norm() > 0.5 * old.norm(dim=1).mean() for i in cells)
    assert not any(torch.equal(new[i], row) for i in cells for row in old)

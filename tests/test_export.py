"""torch vs onnxruntime: the same stream, the same evictions, the same logits and S."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgesleep  # noqa: E402
from conftest import torch_reference  # noqa: E402

CONTEXT = "alice lives in paris . bob works as a chef . alice has a cat . the weather is nice today ."


@pytest.mark.parametrize("passes", [1, 3])
@pytest.mark.parametrize("which", ["tiny", "anchored"])
def test_runtime_matches_torch(which, passes, request):
    fx = request.getfixturevalue(which)
    model, path = fx.model, fx.path
    with edgesleep.open(path, passes=passes) as rt:
        ids = rt.tokenizer.encode(CONTEXT)
        q_ids = rt.tokenizer.encode("where does alice live ?")
        assert len(ids) > 2 * model.args.window  # at least two evictions before the question
        rt.feed(CONTEXT)
        rt.sleep()
        question_logits, ref_S, _ = torch_reference(model, ids, q_ids, passes)
        ref_logits = question_logits[-1]
        for i, s in zip(model.args.gdn_layers, ref_S):
            np.testing.assert_allclose(rt._memory.consolidated.S[i], s, atol=1e-4, rtol=1e-4)
        for t in q_ids:
            rt._run([t])
        logits = rt._logits
        assert np.abs(ref_logits).max() > 0.1  # not a trivially-zero comparison
        np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)


def test_position_anchors_change_the_answer(anchored):
    """The anchored model's two anchors are not no-ops in torch (so the parity tests above would
    notice either one dropped by a graph): pi-scaled RoPE and the window token."""
    import dataclasses

    model, path = anchored.model, anchored.path
    with edgesleep.open(path) as rt:
        ids, q_ids = rt.tokenizer.encode(CONTEXT), rt.tokenizer.encode("where does alice live ?")
    ref = torch_reference(model, ids, q_ids, 2)[0][-1]
    for change in (dict(rope_scale=1.0), dict(window_token=None)):
        other = type(model)(dataclasses.replace(model.args, **change))
        other.load_state_dict(model.state_dict())
        assert np.abs(torch_reference(other.eval(), ids, q_ids, 2)[0][-1] - ref).max() > 1e-2, change


def assert_sleep_pass_matches_torch(model, model_dir, valid: int, seed: int) -> None:
    """The ONNX sleep graph (blocked recurrence) vs torch's chunkwise training form on the same
    random features and fast weights, over a window whose first `valid` slots are real."""
    from edgesleep.backends.onnx import OnnxSleep
    from edgesleep.config import Config
    from edgesleep.state import FastWeights

    config = Config.load(model_dir)
    L, d = config.args.window, config.args.d_model
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(L, d)).astype(np.float32)
    mask = (np.arange(L) < valid).astype(np.float32)
    S0 = FastWeights({i: rng.normal(size=s.shape).astype(np.float32) * 0.2
                      for i, s in FastWeights.zeros(config.args).S.items()})
    h_onnx, S_onnx = OnnxSleep(model_dir, config).sleep_pass(h, mask, S0)
    with torch.no_grad():
        h_t, S_t = model.window(torch.from_numpy(h)[None], [torch.from_numpy(S0.S[i])[None] for i in S0.S],
                                torch.from_numpy(mask)[None])
    np.testing.assert_allclose(h_onnx[:valid], h_t[0, :valid].numpy(), atol=1e-4, rtol=1e-4)
    for i, s in zip(S0.S, S_t):
        np.testing.assert_allclose(S_onnx.S[i], s[0].numpy(), atol=1e-4, rtol=1e-4)
        assert not np.allclose(S_onnx.S[i], S0.S[i])


def test_sleep_pass_matches_chunkwise_training_form(tiny):
    """A masked partial window of the tiny model."""
    model, path = tiny.model, tiny.path
    assert_sleep_pass_matches_torch(model, path, valid=5, seed=0)


def test_shipped_sleep_graph_matches_torch():
    """The tiny model's window (8) is one block of the sleep graph's blocked delta rule; a
    shipped model's (64) is eight, so this checks the hand-off of S from block to block as
    exported."""
    from safetensors.torch import load_file

    from conftest import SHIPPED
    from edgesleep.config import Config
    from export.model import Model

    model = Model(Config.load(SHIPPED / "facts").args)
    model.load_state_dict(load_file(str(SHIPPED / "facts" / "weights.safetensors")))
    model.eval()
    assert_sleep_pass_matches_torch(model, SHIPPED / "facts", valid=model.args.window - 5, seed=1)


def test_graphs_share_one_copy_of_the_weights(tiny):
    """model.onnx and sleep.onnx read their weights from one external file, stored once."""
    import onnx

    model, model_dir = tiny.model, tiny.path
    weight_bytes = sum(p.numel() * 4 for p in model.parameters())
    shared = (model_dir / "graphs.data").stat().st_size
    # once, not once per graph (alignment and a few large constants take the rest)
    assert weight_bytes * 0.9 < shared < weight_bytes * 1.15, shared / weight_bytes
    for graph in ("model.onnx", "sleep.onnx"):
        onnx.checker.check_model(str(model_dir / graph), full_check=True)  # shapes agree with the rewritten weights
        g = onnx.load(str(model_dir / graph), load_external_data=False)
        external = [t for t in g.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external and all(e.value == "graphs.data" for t in external for e in t.external_data if e.key == "location")
        assert not any(n.metadata_props for n in g.graph.node)  # no stack traces with local paths


def test_wake_step_fuses_to_few_nodes(tiny, tmp_path):
    """At one token per call, onnxruntime's cost is per node, so the wake graph is written to
    fuse: every norm becomes one SimplifiedLayerNormalization, and a layer takes at most 45 nodes
    (the 4-layer shipped models ran 373 before the rewrite, 171 now)."""
    import onnx
    import onnxruntime as ort

    model, model_dir = tiny.model, tiny.path
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3  # not the warning that an optimised file is machine-specific
    ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath, load_external_data=False).graph.node]
    layers = len(model.args.layer_types)
    gdn = len(model.args.gdn_layers)
    # per layer two block norms, plus q/k norms (attention) or the q|k and output norms (GDN), plus the final norm
    assert ops.count("SimplifiedLayerNormalization") == 4 * layers + 1
    assert not {"Pow", "Sqrt", "Reciprocal"} & set(ops)
    assert len(ops) <= 45 * layers, f"{len(ops)} nodes for {layers} layers ({gdn} GDN)"


def test_build_refuses_a_model_of_another_vocabulary(tmp_path):
    """rule110 weights with 8 embedding rows built as if trained with cells questions, whose
    tokenizer has 31 words: the build says so before it touches the output folder."""
    from edgesleep.config import ModelArgs
    from export.build import write_model_dir
    from export.model import Model

    (tmp_path / "keep").write_text("an earlier build")
    model = Model(ModelArgs(vocab_size=8, d_model=32, attn_heads=2, attn_head_dim=16, gdn_heads=2, gdn_head_dim=16,
                            ffn_dim=64, window=24))
    with pytest.raises(ValueError, match="8 embedding rows"):
        write_model_dir(model, tmp_path, "rule110", [1], {"params": ["steps=2", "cells=3"]})
    assert (tmp_path / "keep").exists()


def test_build_cli_evaluates_the_card_at_the_given_passes(tmp_path):
    """`python -m export.build --eval-passes 1,3`: the card and metrics.json hold exactly those N;
    `--card-only` refreshes the card at the N it already has; and a pass count that is not a
    positive integer is refused before anything is built."""
    import json

    from export.build import main as build
    from export.train import main as train

    run, out = tmp_path / "run", tmp_path / "model"
    train(["--out", str(run), "--task", "facts", "--steps", "2", "--batch", "2", "--d-model", "32", "--window", "32",
           "--eval-every", "1000", "--eval-examples", "2", "--threads", "1", "--passes", "1-2"])
    build(["--run", str(run), "--out", str(out), "--eval-passes", "1,3", "--eval-examples", "2"])
    assert list(json.loads((out / "metrics.json").read_text())["accuracy"]) == ["1", "3"]
    assert "\n| 3 | " in (out / "card.md").read_text()
    build(["--out", str(out), "--card-only", "--eval-examples", "2"])
    assert list(json.loads((out / "metrics.json").read_text())["accuracy"]) == ["1", "3"]
    with pytest.raises(SystemExit):
        build(["--run", str(run), "--out", str(tmp_path / "other"), "--eval-passes", "1,0"])
    assert not (tmp_path / "other").exists()


def test_card_says_where_a_lineage_was_lost():
    """A lineage whose oldest kept stage names a parent run that was not kept: the card's totals
    cannot count that parent, and the card says so (it names the lost run)."""
    from edgesleep.config import Config, ModelArgs
    from export.build import card

    stages = [{"run": "gone", "missing": True, "command": "", "device": "?", "passes": "?", "batch": "?",
               "seed": "?", "steps": 5, "wall_s": 0},
              {"run": "kept", "command": "python -m export.train --out kept", "device": "cpu", "passes": "1-4",
               "batch": 32, "seed": 1, "steps": 10, "wall_s": 60}]
    train = {"passes": "1-4", "steps": 10, "wall_s": 60, "stages": stages, "total_steps": 15, "total_wall_s": 60}
    metrics = {"task": "rule110", "examples": 2, "seed": 1234, "counts": {"t=12": 8}, "accuracy": {"1": {"t=12": 0.5}}}
    config = Config(ModelArgs(vocab_size=8, d_model=32, window=24), {"name": "rule110", "steps": 12}, [1, 2, 3, 4], train)
    assert "The chain stops at gone, whose run was not kept" in card("m", config, metrics)
    kept_only = Config(config.args, config.task, [1, 2, 3, 4], {**train, "stages": stages[1:]})
    assert "not kept" not in card("m", kept_only, metrics)


@pytest.mark.parametrize("name", ["tiny", "anchored"])
def test_committed_fixtures_are_what_their_script_builds(name, tmp_path):
    """tests/fixtures/ (the runtime's test models, used without torch) holds exactly the seeded
    random models of tests/fixtures/build.py: same config, tokenizer and weights, and graphs that
    give the same logits."""
    from safetensors.numpy import load_file

    from conftest import FIXTURES, build_fixture

    built = build_fixture(name, tmp_path / name)
    for f in ("config.json", "tokenizer.json"):
        assert (built / f).read_text() == (FIXTURES / name / f).read_text(), f
    ours, theirs = load_file(str(FIXTURES / name / "weights.safetensors")), load_file(str(built / "weights.safetensors"))
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    answers = []
    for path in (FIXTURES / name, built):
        with edgesleep.open(path, passes=2) as rt:
            rt.feed(CONTEXT)
            rt.sleep()
            rt.feed("where does alice live ?")
            answers.append(rt.logits)
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-5)

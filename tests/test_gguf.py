"""The GGUF path: export/to_gguf.py run by llama.cpp (edgesleep/backends/gguf.py) vs the torch model,
and backend="gguf" vs backend="onnx" through the public API.

Same weights, same stream: logits within a window, fast weights injected after several evictions,
the recurrent state read back, the conv state, a q8_0 export; the runtime on either backend, and
a memory moved from one backend to the other.
"""
import math
import shutil
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

import edgesleep  # noqa: E402
from conftest import scaled_random_model, torch_reference  # noqa: E402
from edgesleep.backends.gguf import LlamaSession, StateLayoutError  # noqa: E402
from edgesleep.cli import main as cli  # noqa: E402
from edgesleep.config import ModelArgs  # noqa: E402
from export.to_gguf import export_gguf  # noqa: E402
from export.to_onnx import WakeStep, example_states, state_names  # noqa: E402

CONTEXT = "alice lives in paris . bob works as a chef . alice has a cat . the weather is nice today ."  # 22 tokens
QUESTION = "where does alice live ?"
TOL = dict(atol=1e-3, rtol=1e-3)


@pytest.fixture(scope="module")
def tiny_gguf(tiny):
    model, path = tiny.model, tiny.path
    with LlamaSession(path / "model.gguf", n_threads=1) as s:  # export/build.py wrote it
        yield model, path, s


@pytest.fixture(scope="module")
def odd_gguf(tmp_path_factory):
    """Another layer order (GDN first, three GDN layers), non-trivial norms and A_log, and RoPE
    positions scaled by pi (the GGUF's linear rope scaling)."""
    args = ModelArgs(vocab_size=40, d_model=32, layer_types=["gdn", "gdn", "attention", "gdn"], attn_heads=2,
                     attn_head_dim=16, gdn_heads=2, gdn_head_dim=16, ffn_dim=64, window=8, rope_scale=math.pi)
    model = scaled_random_model(args, seed=1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # so that swapped or misplaced norms show
            elif name.endswith("A_log"):
                p.uniform_(-1, 1)
    out = export_gguf(model, tmp_path_factory.mktemp("gguf") / "model.gguf", args.vocab_size)
    with LlamaSession(out, n_threads=1) as s:
        yield model, s


def torch_logits(model, ids, S=None):
    """Logits at every position of one window from S (zero when None), and the new S."""
    with torch.no_grad():
        S = model.empty_state(1) if S is None else [torch.from_numpy(s)[None] for s in S]
        h, S = model.window(model.embed(torch.tensor([ids])), S)
        return model.logits(h)[0].numpy(), [s[0].numpy() for s in S]


def llama_window(session, ids, S):
    """Inject S, then run ids at positions 0, 1, ...; logits at every position."""
    session.inject(S)
    return np.stack([session.decode(t, p) for p, t in enumerate(ids)])


def test_layout_of_exported_file(tiny_gguf):
    model, _, s = tiny_gguf
    a = model.args
    assert s.vocab_size == a.vocab_size
    assert s.gdn_layers == tuple(a.gdn_layers)
    assert (s.layout.heads, s.layout.dk, s.layout.channels, s.layout.kernel) == \
        (a.gdn_heads, a.gdn_head_dim, a.conv_channels, a.conv_kernel)


def test_window_logits_match_torch(tiny_gguf):
    model, _, s = tiny_gguf
    ids = list(range(3, 3 + model.args.window))  # one full window
    ref, _ = torch_logits(model, ids)
    got = llama_window(s, ids, zero_S(model))
    assert np.abs(ref).max() > 0.5
    np.testing.assert_allclose(got, ref, **TOL)


def test_flash_attention_is_f16(tiny_gguf):
    """With flash attention llama.cpp casts the f32 K/V cache to f16 before the kernel, so it
    agrees only to f16 precision: the backend
    keeps it off by default."""
    model, _, s = tiny_gguf
    ids = list(range(3, 3 + model.args.window))
    ref, _ = torch_logits(model, ids)
    with LlamaSession(s.path, n_threads=1, flash_attn=True) as fa:
        got = llama_window(fa, ids, zero_S(model))
    np.testing.assert_allclose(got, ref, atol=3e-2, rtol=3e-2)


def test_other_layer_order(odd_gguf):
    model, s = odd_gguf
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(0, model.args.vocab_size, model.args.window)]
    S = [rng.normal(size=(2, 16, 16)).astype(np.float32) * 0.3 for _ in model.args.gdn_layers]
    ref, S_ref = torch_logits(model, ids, S)
    got = llama_window(s, ids, dict(zip(model.args.gdn_layers, S)))
    np.testing.assert_allclose(got, ref, **TOL)
    for i, sr in zip(model.args.gdn_layers, S_ref):
        np.testing.assert_allclose(s.read_state()[i], sr, **TOL)


@pytest.mark.parametrize("passes", [1, 3])
def test_injected_fast_weights_after_evictions(tiny_gguf, passes):
    model, path, s = tiny_gguf
    from edgesleep.tokenizer import Tokenizer
    tok = Tokenizer.from_file(path / "tokenizer.json")
    ids, q_ids = tok.encode(CONTEXT), tok.encode(QUESTION)
    assert len(ids) > 2 * model.args.window  # at least two evictions before the question
    ref, S, S_after = torch_reference(model, ids, q_ids, passes)
    assert max(np.abs(x).max() for x in S) > 0.1  # the fast weights carry something
    got = llama_window(s, q_ids, dict(zip(model.args.gdn_layers, S)))
    np.testing.assert_allclose(got, ref, **TOL)
    # and the state llama.cpp holds after the question is torch's S after it
    state = s.read_state()
    for i, sr in zip(model.args.gdn_layers, S_after):
        np.testing.assert_allclose(state[i], sr, **TOL)
    # zero fast weights give different answers: the injection is what made them match
    assert not np.allclose(llama_window(s, q_ids, zero_S(model))[-1], ref[-1], **TOL)


def test_runtime_fast_weights_run_in_llama(tiny_gguf):
    """The ONNX runtime's consolidated fast weights (edgesleep.state.FastWeights) go into
    llama.cpp as they are; the question then gives the runtime's logits and S."""
    model, path, s = tiny_gguf
    with edgesleep.open(path, passes=2) as rt:
        rt.feed(CONTEXT)
        rt.sleep()
        S = {i: x.copy() for i, x in rt._memory.consolidated.S.items()}
        q_ids = rt.tokenizer.encode(QUESTION)
        for t in q_ids:
            rt._run([t])
        ref, S_after = rt._logits, {i: x.copy() for i, x in rt._memory.fast.S.items()}
    got = llama_window(s, q_ids, S)[-1]
    np.testing.assert_allclose(got, ref, **TOL)
    state = s.read_state()
    for i in S_after:
        np.testing.assert_allclose(state[i], S_after[i], **TOL)


def test_state_and_conv_follow_the_torch_wake_step(tiny_gguf):
    """read_recurrent after a few tokens: S, conv rows and position as the ONNX wake step's torch
    module computes them, from an injected S and a non-zero conv state."""
    model, _, s = tiny_gguf
    a = model.args
    rng = np.random.default_rng(1)
    wake, _ = example_states(model)
    names = state_names(model)
    states = dict(zip(names, wake))
    for i in a.gdn_layers:
        states[f"S.{i}"] = torch.from_numpy(rng.normal(size=(a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim))
                                            .astype(np.float32) * 0.3)
        states[f"conv.{i}"] = torch.from_numpy(rng.normal(size=(a.conv_channels, a.conv_kernel - 1))
                                               .astype(np.float32))
    s.inject({i: states[f"S.{i}"].numpy() for i in a.gdn_layers},
             {i: states[f"conv.{i}"].numpy() for i in a.gdn_layers})
    step = WakeStep(model)
    for pos, t in enumerate([5, 9, 2]):
        with torch.no_grad():
            logits, *new = step(torch.tensor([t]), torch.tensor([pos]), *[states[n] for n in names])
        states = dict(zip(names, new))
        got = s.decode(t, pos)
        np.testing.assert_allclose(got, logits.numpy(), **TOL)
    last, conv, S = s.read_recurrent()
    assert last == 2
    for i in a.gdn_layers:
        np.testing.assert_allclose(S[i], states[f"S.{i}"].numpy(), **TOL)
        np.testing.assert_allclose(conv[i], states[f"conv.{i}"].numpy(), **TOL)


def test_decode_many_matches_decode(tiny_gguf):
    """A batch of tokens (llama.cpp's chunked GDN path) gives the token-by-token result."""
    model, _, s = tiny_gguf
    rng = np.random.default_rng(2)
    S = {i: rng.normal(size=(2, 16, 16)).astype(np.float32) * 0.3 for i in model.args.gdn_layers}
    ids = [4, 8, 15, 16, 23, 42 % model.args.vocab_size]
    one = llama_window(s, ids, S)[-1]
    S_one = s.read_state()
    s.inject(S)
    many = s.decode_many(ids, 0)
    np.testing.assert_allclose(many, one, **TOL)
    for i in S:
        np.testing.assert_allclose(s.read_state()[i], S_one[i], **TOL)


def test_inject_roundtrip_and_layout_errors(tiny_gguf):
    model, _, s = tiny_gguf
    rng = np.random.default_rng(3)
    S = {i: rng.normal(size=(2, 16, 16)).astype(np.float32) for i in model.args.gdn_layers}
    s.inject(S)
    back = s.read_state()
    for i in S:
        assert np.array_equal(back[i], S[i])  # bit exact, and (H, dv, dk) without transposes
    blob = s._get_blob()
    s.layout.parse(blob)
    bad_magic = struct.pack("<I", 0x12345678) + blob[4:]
    with pytest.raises(StateLayoutError, match="magic"):
        s.layout.parse(bad_magic)
    n_layer_at = 4 + 4 + 4 + 8 + 4  # magic, seq, cells, {pos, n_seq_id}, s_trans
    bad_layers = blob[:n_layer_at] + struct.pack("<I", 7) + blob[n_layer_at + 4:]
    with pytest.raises(StateLayoutError, match="n_layer"):
        s.layout.parse(bad_layers)
    row_at = n_layer_at + 4 + 4
    bad_row = blob[:row_at] + struct.pack("<Q", 8) + blob[row_at + 8:]
    with pytest.raises(StateLayoutError, match="row bytes"):
        s.layout.parse(bad_row)
    with pytest.raises(StateLayoutError):
        s.layout.parse(blob + b"\0")
    with pytest.raises(ValueError, match="shape"):
        s.inject({i: x.T[None] for i, x in S.items()})
    with pytest.raises(ValueError, match="layers"):
        s.inject({})


def test_q8_0_export(tiny_gguf, tmp_path):
    model, _, f32 = tiny_gguf
    path = export_gguf(model, tmp_path / "model.q8_0.gguf", model.args.vocab_size, "q8_0")
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    Q8, F32 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32
    assert types["blk.0.attn_q.weight"] == Q8 and types["blk.1.attn_qkv.weight"] == Q8
    assert types["token_embd.weight"] == Q8
    for name, t in types.items():
        if name.endswith(("norm.weight", "ssm_conv1d.weight", "ssm_a", "ssm_dt.bias", "ssm_beta.weight",
                          "ssm_alpha.weight")):
            assert t == F32, name
    ids = list(range(3, 3 + model.args.window))
    ref, _ = torch_logits(model, ids)
    with LlamaSession(path, n_threads=1) as s:
        got = llama_window(s, ids, zero_S(model))
    # q8_0 weights and llama.cpp's q8_0 activations on a model with weights ~15x the training
    # init: ~7% of the largest logit here (the weight rounding alone gives ~4% in torch)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 0.15, err
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.75
    assert path.stat().st_size < 0.6 * f32.path.stat().st_size


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        LlamaSession(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ValueError):
        LlamaSession(bad)


def zero_S(model):
    a = model.args
    return {i: np.zeros((a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim), np.float32) for i in a.gdn_layers}


# -- backend="gguf" through the public API ------------------------------------------------------
def assert_same_state(a, b):
    for i, x in a._memory.fast.S.items():
        np.testing.assert_allclose(b._memory.fast.S[i], x, **TOL)


@pytest.mark.parametrize("which", ["tiny", "anchored"])
def test_gguf_backend_matches_onnx(which, request):
    """One stream on both backends: logits after two evictions, answers (the first crosses an
    eviction; after each, llama.cpp must rebuild the window it no longer holds), more input,
    a deep sleep (pass 1 recomputed on the sleep graph), and a question after it. Also for a
    model whose windows open with a token and whose RoPE is scaled."""
    path = request.getfixturevalue(which).path
    with edgesleep.open(path, passes=2) as onnx, edgesleep.open(path, backend="gguf", passes=2) as gguf:
        assert (onnx.status()["backend"], gguf.status()["backend"]) == ("onnx", "gguf")
        runtimes = (onnx, gguf)
        for rt in runtimes:
            rt.feed(CONTEXT)
        n, per = len(gguf.tokenizer.encode(CONTEXT)), gguf.config.args.window_text
        assert gguf.status()["tokens_consolidated"] == n - n % per >= 2 * per
        assert np.abs(onnx.logits).max() > 0.5
        np.testing.assert_allclose(gguf.logits, onnx.logits, **TOL)
        assert_same_state(onnx, gguf)
        for q in (QUESTION, "what is bob 's job ?", QUESTION):
            assert gguf.answer(q) == onnx.answer(q)
        for rt in runtimes:
            rt.feed("bob has a dog .")
        np.testing.assert_allclose(gguf.logits, onnx.logits, **TOL)
        for rt in runtimes:
            rt.sleep()
        assert_same_state(onnx, gguf)
        for rt in runtimes:
            rt.feed(QUESTION)
        np.testing.assert_allclose(gguf.logits, onnx.logits, **TOL)


def test_memory_moves_between_backends(tiny, tmp_path):
    """A memory deep-slept under onnx, opened under gguf (the fingerprint does not depend on
    the backend), answers as under onnx."""
    path = tiny.path
    with edgesleep.open(path, memory=tmp_path / "m", passes=2) as rt:
        rt.feed(CONTEXT)
        rt.sleep()
    shutil.copytree(tmp_path / "m", tmp_path / "copy")
    answers, logits = {}, {}
    for backend, memory in (("onnx", "m"), ("gguf", "copy")):
        with edgesleep.open(path, memory=tmp_path / memory, backend=backend) as rt:
            assert rt._memory.head.deep and rt._memory.head.passes == 2
            answers[backend] = rt.answer(QUESTION)
            rt.feed(QUESTION)
            logits[backend] = rt.logits
    assert answers["gguf"] == answers["onnx"]
    np.testing.assert_allclose(logits["gguf"], logits["onnx"], **TOL)


def test_gguf_backend_without_its_file(tiny, tmp_path, capsys):
    path = tiny.path
    bare = tmp_path / "bare"
    shutil.copytree(path, bare, ignore=shutil.ignore_patterns("*.gguf"))
    with pytest.raises(FileNotFoundError, match=r"no model\.gguf .*`python -m export\.to_gguf "):
        edgesleep.open(bare, backend="gguf")
    with pytest.raises(FileNotFoundError, match=r"no model\.q8_0\.gguf .*--quant q8_0`"):
        edgesleep.open(bare, backend="gguf:q8_0")
    with pytest.raises(ValueError, match="unknown backend"):
        edgesleep.open(bare, backend="mlx")
    assert cli(["ask", "--memory", str(tmp_path / "m"), "--model", str(bare), "--backend", "gguf", QUESTION]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "export.to_gguf" in err and err.count("\n") == 1

"""The wake/feed graph of a llama GGUF, with optional Gated DeltaNet memory layers, in ONNX.

One graph serves both decoding (T = 1) and feeding a whole window (T > 1):

    inputs   tokens (T,) int64; pos (1,) int64, the window position of tokens[0];
             past_k.i, past_v.i (P, n_kv_heads, head_dim) per layer, post-RoPE;
             S.m (H, dk, dk) and conv.m (C, K-1) per memory layer
    outputs  logits (vocab,) of the last token, or (T, vocab) with all_logits;
             new_k.i, new_v.i (T, n_kv_heads, head_dim), which the caller appends to its cache;
             new_S.m, new_conv.m

With cache="shared" the cache is instead one buffer per layer that the graph appends to in
place: inputs cache_k.i, cache_v.i (1, n_kv_heads, L, head_dim), rows pos..pos+T-1 written,
outputs present_k.i, present_v.i, to be bound to the same buffers (I/O binding). No cache row
is copied and the bindings stay the same from call to call; P is then `pos`.

Weights stay as the GGUF stores them: Q4_0/Q4_1/Q8_0 matrices run through MatMulNBits (see
gguf_weights), the Q8_0 embedding table is gathered as codes and scaled per block, the tied LM
head is the same Q8_0 matrix through MatMulNBits at 8 bits. Attention is onnxruntime's
GroupQueryAttention, with RoPE in llama.cpp's "normal" form (adjacent pairs (2i, 2i+1)), which
the GGUF's permuted q/k rows expect, from tables computed as llama.cpp computes its angles. A memory layer before base layer j adds
out(GDN(rmsnorm(x))) to the residual stream; with out = 0 the base is unchanged bit for bit.

    build(GGUFWeights(path), "out/smollm2", memory=MemoryArgs.spread(3, 30))
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgesleep.llama.gguf_weights import BLOCK, GGUFWeights, LlamaArgs, Packed

OPSET = 21
MS = "com.microsoft"
MODEL_FILE = "model.onnx"
DATA_FILE = "model.data"


@dataclass
class MemoryArgs:
    """The GDN memory layers: `before` lists the base layers they are inserted before (the
    number of layers: after the last one)."""

    before: list[int] = field(default_factory=list)
    heads: int = 4
    head_dim: int = 64  # dk = dv
    conv_kernel: int = 4

    @property
    def channels(self) -> int:
        return 3 * self.heads * self.head_dim

    @classmethod
    def spread(cls, count: int, n_layers: int, **kw) -> "MemoryArgs":
        """`count` layers spaced evenly through the stack."""
        return cls(before=[round(n_layers * (m + 1) / (count + 1)) for m in range(count)], **kw)


def init_memory(mem: MemoryArgs, d_model: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Untrained memory weights: random projections, a zero out projection (so the base model is
    unchanged until trained), and a slow decay as in export/model.py. The names and shapes are
    those build_model takes, for memory layer m (d = d_model, C = 3 H dk):

        mem.m.norm (d,)      mem.m.qkv (C, d)     mem.m.gate (H dk, d)   mem.m.beta (H, d)
        mem.m.alpha (H, d)   mem.m.dt_bias (H,)   mem.m.A_log (H,)       mem.m.conv (C, K)
        mem.m.head_norm (dk,)                     mem.m.out (d, H dk)
    """
    rng = np.random.default_rng(seed)
    H, dk, K = mem.heads, mem.head_dim, mem.conv_kernel
    lin = lambda n: (rng.standard_normal((n, d_model)) / np.sqrt(d_model)).astype(np.float32)  # noqa: E731
    w = {}
    for m in range(len(mem.before)):
        w |= {f"mem.{m}.norm": np.ones(d_model, np.float32), f"mem.{m}.qkv": lin(mem.channels),
              f"mem.{m}.gate": lin(H * dk), f"mem.{m}.beta": lin(H), f"mem.{m}.alpha": lin(H),
              f"mem.{m}.dt_bias": np.full(H, -6.0, np.float32), f"mem.{m}.A_log": np.zeros(H, np.float32),
              f"mem.{m}.conv": (rng.standard_normal((mem.channels, K)) / np.sqrt(K)).astype(np.float32),
              f"mem.{m}.head_norm": np.ones(dk, np.float32),
              f"mem.{m}.out": np.zeros((d_model, H * dk), np.float32)}
    return w


def rope_tables(a: LlamaArgs, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (positions, head_dim), each angle repeated for its pair (2i, 2i+1). The angles
    are computed as llama.cpp computes them, in float32, theta multiplied by base^(-2/dim) from
    one pair to the next, rather than as pos * base^(-2i/dim), which rounds differently."""
    step = np.float32(a.rope_base) ** np.float32(-2.0 / a.head_dim)
    theta = np.empty((positions, a.head_dim // 2), np.float32)
    theta[:, 0] = np.arange(positions, dtype=np.float32)
    for i in range(1, a.head_dim // 2):
        theta[:, i] = theta[:, i - 1] * step
    return np.repeat(np.cos(theta), 2, 1), np.repeat(np.sin(theta), 2, 1)


class _Graph:
    """Nodes and initialisers being collected, with fresh names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], {}, 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        """An initialiser; one already added under `name` is reused."""
        name = name or self.name("c")
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def ints(self, *v: int) -> str:
        return self.const(np.array(v, np.int64))

    def op(self, kind: str, *inputs: str, outputs: int | list[str] = 1, domain: str = "", **attrs):
        names = outputs if isinstance(outputs, list) else [self.name(kind.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, list(inputs), names, domain=domain or None, **attrs))
        return names[0] if len(names) == 1 else names


@dataclass
class _Options:
    accuracy_level: int = 4  # MatMulNBits: 4 = int8 activations, as llama.cpp's CPU dot products
    all_logits: bool = False
    head_accuracy_level: int | None = None  # the LM head's, when not accuracy_level
    cache: str = "split"  # "split": past in, new rows out; "shared": one buffer, appended in place
    embedding: str = "codes"  # "codes": the GGUF's blocks, scaled in the graph; "f32", "f16": a dense table
    # an input `h` (T, d) read after the token embeddings, and an output `h_out` (T, d), the
    # residual stream before the final norm: a sleep pass that reads the previous pass's features
    features: bool = False


class _Builder:
    def __init__(self, w: GGUFWeights, mem: MemoryArgs, mem_weights: dict[str, np.ndarray],
                 opts: _Options, positions: int):
        self.w, self.a, self.mem, self.mw, self.opts = w, w.args, mem, mem_weights, opts
        self.g = _Graph()
        self.positions = positions
        self._ones, self._sums = {}, {}

    # -- weights ---------------------------------------------------------------------------
    def linear(self, x: str, W: Packed | np.ndarray, name: str, accuracy_level: int | None = None) -> str:
        """x (T, K) @ W^T. A Packed W with offsets adds sum over blocks of offset * block sum of x
        (Gemm: block sums @ offsets^T + MatMulNBits' output)."""
        g = self.g
        if isinstance(W, np.ndarray):
            return g.op("MatMul", x, g.const(np.ascontiguousarray(W.T, np.float32), f"{name}.T"))
        ins = [x, g.const(W.B, f"{name}.B"), g.const(W.scales, f"{name}.scales"),
               g.const(W.zero_points, f"{name}.zp")]
        y = g.op("MatMulNBits", *ins, domain=MS, K=W.K, N=W.N, bits=W.bits, block_size=BLOCK,
                 accuracy_level=self.opts.accuracy_level if accuracy_level is None else accuracy_level)
        if W.offset is None:
            return y
        if x not in self._sums:
            self._sums[x] = g.op("MatMul", x, self._block_ones(W.K))
        # offsets kept (N, K/32): each output's are contiguous, which suits a single-row Gemm
        return g.op("Gemm", self._sums[x], g.const(np.ascontiguousarray(W.offset), f"{name}.offset"), y, transB=1)

    def _block_ones(self, k: int) -> str:
        """(K, K/32) with ones where input k is in block b: x @ it is the sum of x per block."""
        if k not in self._ones:
            ones = np.kron(np.eye(k // BLOCK, dtype=np.float32), np.ones((BLOCK, 1), np.float32))
            self._ones[k] = self.g.const(ones, f"block_ones.{k}")
        return self._ones[k]

    def norm_weight(self, name: str) -> str:
        return self.g.const(self.w.array(name), name)

    # -- the graph -------------------------------------------------------------------------
    def _states(self, cache: tuple[str, list], prefix: str) -> list:
        """Value infos of the attention caches (name prefix and shape) and of the memory layers'
        states (S and conv, with `prefix`): the graph's inputs and, named anew, its outputs."""
        mem, f = self.mem, TensorProto.FLOAT
        infos = [helper.make_tensor_value_info(f"{cache[0]}{kv}.{i}", f, cache[1])
                 for i in range(self.a.n_layers) for kv in "kv"]
        for m in range(len(mem.before)):
            infos += [helper.make_tensor_value_info(f"{prefix}S.{m}", f, [mem.heads, mem.head_dim, mem.head_dim]),
                      helper.make_tensor_value_info(f"{prefix}conv.{m}", f, [mem.channels, mem.conv_kernel - 1])]
        return infos

    def build(self) -> onnx.ModelProto:
        a, g, mem = self.a, self.g, self.mem
        hd, nkv = a.head_dim, a.n_kv_heads
        inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["T"]),
                  helper.make_tensor_value_info("pos", TensorProto.INT64, [1])]
        outputs = []
        shared = self.opts.cache == "shared"
        inputs += self._states(("cache_", [1, nkv, "L", hd]) if shared else ("past_", ["P", nkv, hd]), "")

        x = self.embed("tokens")
        if self.opts.features:  # tokens or features, whichever the caller gives (the other empty)
            inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["H", a.d_model]))
            x = g.op("Concat", x, "h", axis=0)
        self.positions_and_lengths(x)
        delta, norm_out = None, None
        for i in range(a.n_layers):
            if i in mem.before:
                x, delta = self.memory_layer(mem.before.index(i), x, delta)
            xn, x = self.norm(x, delta, self.norm_weight(f"blk.{i}.attn_norm.weight"))
            delta = self.attention(i, xn)
            hn, x = self.norm(x, delta, self.norm_weight(f"blk.{i}.ffn_norm.weight"))
            delta = self.mlp(i, hn)
        if a.n_layers in mem.before:  # after the last layer, before the output norm
            x, delta = self.memory_layer(mem.before.index(a.n_layers), x, delta)
        norm_out, stream = self.norm(x, delta, self.norm_weight("output_norm.weight"))

        if not self.opts.all_logits:  # the last token's row only: the LM head is a fifth of the work
            norm_out = g.op("Slice", norm_out, g.ints(-1), g.ints(1 << 62), g.ints(0))
        head = "output.weight" if "output.weight" in self.w else "token_embd.weight"
        logits = self.linear(norm_out, self.w.matrix(head), "lm_head", self.opts.head_accuracy_level)
        if self.opts.all_logits:
            g.op("Identity", logits, outputs=["logits"])
            outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["T", a.vocab_size]))
        else:
            g.op("Reshape", logits, g.ints(-1), outputs=["logits"])
            outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [a.vocab_size]))
        outputs += self._states(("present_", [1, nkv, "L", hd]) if shared else ("new_", ["T", nkv, hd]), "new_")
        if self.opts.features:  # last, so that logits stay first
            g.op("Identity", stream, outputs=["h_out"])
            outputs.append(helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["T", a.d_model]))
        graph = helper.make_graph(g.nodes, "llama", inputs, outputs, list(g.inits.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)])
        model.ir_version = 10
        return model

    def embed(self, tokens: str) -> str:
        """Rows of the embedding table. A Q8_0/Q4 table is gathered as codes and scaled per
        block, so it stays at its file size; float tables are gathered as they are."""
        g, d = self.g, self.a.d_model
        E = self.w.matrix("token_embd.weight")
        if isinstance(E, np.ndarray) or self.opts.embedding == "f32":  # exact, 4 bytes a weight
            E = E if isinstance(E, np.ndarray) else E.dequantize()
            return g.op("Gather", g.const(E, "token_embd"), tokens)
        if self.opts.embedding == "f16":  # 2 bytes a weight, not exact: d * q rounded to f16
            return g.op("Cast", g.op("Gather", g.const(E.dequantize().astype(np.float16), "token_embd"), tokens),
                        to=TensorProto.FLOAT)
        nb = d // BLOCK
        # A table of its own, although the tied LM head holds the same bytes: mapped from the
        # external data file, it is paged in as rows are looked up (with the kernel's fault-around,
        # some 20 MB of SmolLM2's 27 after 450 tokens of text). Shared, all of it stayed resident
        # from the start, since prepacking the LM head reads it whole.
        codes = g.const(E.codes().reshape(E.N, nb, BLOCK), "token_embd.codes")
        q = g.op("Cast", g.op("Gather", codes, tokens), to=TensorProto.FLOAT)  # (T, nb, 32)
        scale = g.const(E.scales.reshape(E.N, nb, 1), "token_embd.scales")
        zero = E.zeros().astype(np.float32)
        if (zero == zero.flat[0]).all():
            q = g.op("Sub", q, g.const(np.float32(zero.flat[0])))
        else:
            q = g.op("Sub", q, g.op("Gather", g.const(zero[..., None], "token_embd.zeros"), tokens))
        x = g.op("Mul", q, g.op("Gather", scale, tokens))
        if E.offset is not None:
            x = g.op("Add", x, g.op("Gather", g.const(E.offset[..., None], "token_embd.offset"), tokens))
        return g.op("Reshape", x, g.ints(-1, d))

    def positions_and_lengths(self, x: str) -> None:
        """Shared by every layer: the RoPE positions pos..pos+T-1 (1, T) of the rows of x, and
        the attention's lengths, past + new (int32, as GroupQueryAttention takes them)."""
        g = self.g
        T = g.op("Shape", x, start=0, end=1)
        P = "pos" if self.opts.cache == "shared" else g.op("Shape", "past_k.0", start=0, end=1)
        pos = g.op("Squeeze", "pos", g.ints(0))
        positions = g.op("Range", pos, g.op("Add", pos, g.op("Squeeze", T, g.ints(0))),
                         g.const(np.array(1, np.int64)))
        self.positions_ids = g.op("Unsqueeze", positions, g.ints(0))
        total = g.op("Cast", g.op("Add", P, T), to=TensorProto.INT32)
        self.total = g.op("Squeeze", total, g.ints(0))
        self.seqlens = g.op("Sub", total, g.const(np.array([1], np.int32)))
        self.past_len = P
        cos, sin = rope_tables(self.a, self.positions)
        self.cos = g.const(np.ascontiguousarray(cos[:, 0::2]), "rope.cos")
        self.sin = g.const(np.ascontiguousarray(sin[:, 0::2]), "rope.sin")

    def norm(self, x: str, delta: str | None, weight: str) -> tuple[str, str]:
        """RMSNorm of x + delta; returns (normalised, x + delta)."""
        eps = self.a.norm_eps
        if delta is None:
            return self.g.op("SimplifiedLayerNormalization", x, weight, axis=-1, epsilon=eps), x
        out, _, _, total = self.g.op("SkipSimplifiedLayerNormalization", x, delta, weight, outputs=4,
                                     domain=MS, epsilon=eps)
        return out, total

    def attention(self, i: int, xn: str) -> str:
        """GroupQueryAttention: RoPE (interleaved pairs, from our tables) on q and k, the causal
        mask over past + new, q head h reading kv head h // (heads / kv_heads). It wants the
        cache as (1, kv_heads, P, head_dim): the caller's (P, kv_heads, head_dim) is transposed
        in, and the new rows of its present cache transposed out."""
        a, g, w = self.a, self.g, self.w
        hd, nh, nkv = a.head_dim, a.n_heads, a.n_kv_heads
        Wq, Wk, Wv = (w.matrix(f"blk.{i}.attn_{n}.weight") for n in "qkv")
        W = Packed.concat([Wq, Wk, Wv]) if isinstance(Wq, Packed) else np.concatenate([Wq, Wk, Wv])
        qkv = g.op("Unsqueeze", self.linear(xn, W, f"blk.{i}.qkv"), g.ints(0))  # (1, T, .)
        q, k, v = g.op("Split", qkv, g.ints(nh * hd, nkv * hd, nkv * hd), axis=2, outputs=3)
        shared = self.opts.cache == "shared"
        if shared:  # GroupQueryAttention appends in place when past and present are one buffer
            past = [f"cache_{n}.{i}" for n in "kv"]
            outputs = [self.g.name("att"), f"present_k.{i}", f"present_v.{i}"]
        else:
            past = [g.op("Transpose", g.op("Unsqueeze", f"past_{n}.{i}", g.ints(0)), perm=[0, 2, 1, 3]) for n in "kv"]
            outputs = 3
        att, present_k, present_v = g.op(
            "GroupQueryAttention", q, k, v, *past, self.seqlens, self.total, self.cos, self.sin,
            self.positions_ids, outputs=outputs, domain=MS, num_heads=nh, kv_num_heads=nkv, do_rotary=1,
            rotary_interleaved=1)
        for n, present in () if shared else (("k", present_k), ("v", present_v)):
            new = g.op("Slice", present, self.past_len, g.ints(1 << 62), g.ints(2))  # (1, kv, T, hd)
            g.op("Reshape", g.op("Transpose", new, perm=[0, 2, 1, 3]), g.ints(-1, nkv, hd),
                 outputs=[f"new_{n}.{i}"])
        att = g.op("Reshape", att, g.ints(-1, nh * hd))
        return self.linear(att, w.matrix(f"blk.{i}.attn_output.weight"), f"blk.{i}.attn_output")

    def mlp(self, i: int, hn: str) -> str:
        g, w = self.g, self.w
        gate, up = w.matrix(f"blk.{i}.ffn_gate.weight"), w.matrix(f"blk.{i}.ffn_up.weight")
        W = Packed.concat([gate, up]) if isinstance(gate, Packed) else np.concatenate([gate, up])
        gu = self.linear(hn, W, f"blk.{i}.ffn_gate_up")
        gate, up = g.op("Split", gu, g.ints(self.a.ffn_dim, self.a.ffn_dim), axis=1, outputs=2)
        act = g.op("Mul", g.op("Mul", gate, g.op("Sigmoid", gate)), up)
        return self.linear(act, w.matrix(f"blk.{i}.ffn_down.weight"), f"blk.{i}.ffn_down")

    def memory_layer(self, m: int, x: str, delta: str | None) -> tuple[str, str]:
        """x + delta -> (x + delta, out(GDN(rmsnorm(x + delta)))), the GDN as export/model.py's
        GatedDeltaNet: causal depthwise conv over [q|k|v] from the carried conv state, SiLU,
        L2-normalised q and k, then the gated delta rule token by token (a Scan) from S."""
        g, mem, mw, eps = self.g, self.mem, self.mw, self.a.norm_eps
        H, dk, K, C = mem.heads, mem.head_dim, mem.conv_kernel, mem.channels
        p = f"mem.{m}."
        h, x = self.norm(x, delta, g.const(mw[p + "norm"], p + "norm"))
        W_in = np.concatenate([mw[p + "qkv"], mw[p + "gate"], mw[p + "beta"], mw[p + "alpha"]])
        pre, z, b, al = g.op("Split", g.op("MatMul", h, g.const(np.ascontiguousarray(W_in.T), p + "in.T")),
                             g.ints(C, H * dk, H, H), axis=1, outputs=4)
        taps = g.op("Concat", f"conv.{m}", g.op("Transpose", pre, perm=[1, 0]), axis=1)  # (C, K-1+T)
        g.op("Slice", taps, g.ints(-(K - 1)), g.ints(1 << 62), g.ints(1), outputs=[f"new_conv.{m}"])
        conv = g.op("Conv", g.op("Unsqueeze", taps, g.ints(0)), g.const(mw[p + "conv"][:, None, :], p + "conv"),
                    group=C, kernel_shape=[K])  # (1, C, T)
        mixed = g.op("Transpose", g.op("Squeeze", conv, g.ints(0)), perm=[1, 0])
        mixed = g.op("Mul", mixed, g.op("Sigmoid", mixed))
        qk, v = g.op("Split", g.op("Reshape", mixed, g.ints(-1, 3, H, dk)), g.ints(2, 1), axis=1, outputs=2)
        # q / sqrt(sum q^2 + eps), written as an RMSNorm so that it is one fused node
        qk = g.op("SimplifiedLayerNormalization", qk, g.const(np.full(dk, dk ** -0.5, np.float32)),
                  axis=-1, epsilon=eps / dk)
        q, k = g.op("Split", qk, g.ints(1, 1), axis=1, outputs=2)
        q = g.op("Mul", g.op("Reshape", q, g.ints(-1, H, dk, 1)), g.const(np.float32(dk ** -0.5)))
        k_col = g.op("Reshape", k, g.ints(-1, H, dk, 1))
        k_row = g.op("Reshape", k, g.ints(-1, H, 1, dk))
        v = g.op("Reshape", v, g.ints(-1, H, dk, 1))
        beta = g.op("Reshape", g.op("Sigmoid", b), g.ints(-1, H, 1, 1))
        gate = g.op("Mul", g.op("Softplus", g.op("Add", al, g.const(mw[p + "dt_bias"], p + "dt_bias"))),
                    g.const(-np.exp(mw[p + "A_log"]).astype(np.float32), p + "neg_A"))
        decay = g.op("Reshape", g.op("Exp", gate), g.ints(-1, H, 1, 1))
        S, o = g.op("Scan", f"S.{m}", q, k_col, k_row, v, beta, decay, outputs=[f"new_S.{m}", self.g.name("o")],
                    num_scan_inputs=6, body=_delta_rule_step(H, dk))
        o = g.op("SimplifiedLayerNormalization", g.op("Reshape", o, g.ints(-1, H, dk)),
                 g.const(mw[p + "head_norm"], p + "head_norm"), axis=-1, epsilon=eps)
        o = g.op("Mul", g.op("Reshape", o, g.ints(-1, H * dk)), g.op("Mul", z, g.op("Sigmoid", z)))
        return x, g.op("MatMul", o, g.const(np.ascontiguousarray(mw[p + "out"].T), p + "out.T"))


def _delta_rule_step(H: int, dk: int) -> onnx.GraphProto:
    """Scan body, one token: S <- decay S; S <- S + beta (v - S k) k^T; o = S q."""
    f = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Mul", ["S", "decay"], ["S1"]),
             helper.make_node("MatMul", ["S1", "k"], ["Sk"]),
             helper.make_node("Sub", ["v", "Sk"], ["err"]),
             helper.make_node("Mul", ["beta", "err"], ["d"]),
             helper.make_node("MatMul", ["d", "kT"], ["dk"]),
             helper.make_node("Add", ["S1", "dk"], ["S2"]),
             helper.make_node("MatMul", ["S2", "q"], ["o"])]
    return helper.make_graph(
        nodes, "delta_rule_step",
        [vi("S", f, [H, dk, dk]), vi("q", f, [H, dk, 1]), vi("k", f, [H, dk, 1]), vi("kT", f, [H, 1, dk]),
         vi("v", f, [H, dk, 1]), vi("beta", f, [H, 1, 1]), vi("decay", f, [H, 1, 1])],
        [vi("S2", f, [H, dk, dk]), vi("o", f, [H, dk, 1])])


def build_model(w: GGUFWeights, memory: MemoryArgs | None = None,
                memory_weights: dict[str, np.ndarray] | None = None, accuracy_level: int = 4,
                all_logits: bool = False, positions: int | None = None,
                head_accuracy_level: int | None = None, cache: str = "split",
                embedding: str = "codes", features: bool = False) -> onnx.ModelProto:
    """The wake/feed graph in memory. `positions` bounds pos + T (default: the GGUF's context
    length, at most 8192), the size of the RoPE tables."""
    memory = memory or MemoryArgs()
    if sorted(set(memory.before)) != list(memory.before) or not all(0 <= j <= w.args.n_layers for j in memory.before):
        raise ValueError(f"memory layers go before base layers 0..{w.args.n_layers}, in increasing order: {memory.before}")
    if memory.before and memory_weights is None:
        memory_weights = init_memory(memory, w.args.d_model)
    positions = positions or min(w.args.context_length, 8192)
    return _Builder(w, memory, memory_weights or {}, _Options(accuracy_level, all_logits, head_accuracy_level, cache, embedding, features), positions).build()


def save(model: onnx.ModelProto, folder: str | Path) -> Path:
    """Write `model` as folder/model.onnx + folder/model.data, atomically: into a temporary
    folder beside it, then renamed over the old one, so a reader never sees half a model."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        onnx.save_model(model, str(tmp / MODEL_FILE), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024)
        for f in (MODEL_FILE, DATA_FILE):
            os.chmod(tmp / f, 0o644)  # mkdtemp and onnx make them private
        os.chmod(tmp, 0o755)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(folder, old)
        os.rename(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder / MODEL_FILE


def build(w: GGUFWeights | str | Path, folder: str | Path, **kw) -> Path:
    """Build the graph of a GGUF (path or GGUFWeights) and save it in `folder`; returns the
    model file's path. Keyword arguments are build_model's."""
    if not isinstance(w, GGUFWeights):
        w = GGUFWeights(w)
    return save(build_model(w, **kw), folder)

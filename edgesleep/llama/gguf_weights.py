"""A llama GGUF read into numpy: its hyper-parameters and its tensors.

Quantised matrices are repacked for onnxruntime's MatMulNBits rather than dequantised, so the
graph keeps the file's 4 and 8 bits a weight. MatMulNBits computes, per block of 32 inputs,
scale * (q - zero_point); the GGUF block formats map onto it as

    Q4_0: d * (q - 8)        scale d, zero point 8 (MatMulNBits' default for 4 bits)
    Q8_0: d * q, q int8      stored q + 128, scale d, zero point 128
    Q4_1: d * q + m          scale d, zero point 8, and m + 8 d as a separate per-block `offset`

A float zero point -m/d would express Q4_1 in MatMulNBits alone, but onnxruntime runs float
zero points on a slow path (about 70 times slower at one token), so the graph adds the offset
term itself: sum_k (d q_k + m) x_k = MatMulNBits(x) + sum_blocks (m + 8 d) * (sum of x over the
block). The zero point is 8 rather than 0 because with int8 activations (accuracy_level 4)
onnxruntime's error is then that of llama.cpp's own Q8 activations; at 0 it was 1.6 times that
(one ffn_up of SmolLM2: max error 0.16 vs 0.26, Q8-rounded x: 0.14). No weight changes value.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf.quants import dequantize

BLOCK = 32  # the block size of Q4_0, Q4_1 and Q8_0, and the one MatMulNBits is given


@dataclass
class LlamaArgs:
    """The hyper-parameters of a llama GGUF (its `llama.*` keys)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    norm_eps: float
    rope_base: float
    context_length: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


@dataclass
class Packed:
    """One matrix W (N outputs, K inputs) as MatMulNBits' operands: y = x @ W^T.

    B (N, K/32, 32*bits/8) uint8, element 2i of a block in the low nibble of byte i at 4 bits;
    scales (N * K/32,) float32; zero_points uint8, packed like B (two per byte at 4 bits);
    offset (N, K/32) float32 or None: a constant added to every weight of a block (Q4_1's m)."""

    B: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    bits: int
    offset: np.ndarray | None = None

    @property
    def N(self) -> int:
        return self.B.shape[0]

    @property
    def K(self) -> int:
        return self.B.shape[1] * BLOCK

    def codes(self) -> np.ndarray:
        """The unsigned codes q (N, K)."""
        if self.bits == 8:
            return self.B.reshape(self.N, self.K)
        q = np.empty((*self.B.shape[:2], BLOCK), np.uint8)
        q[..., 0::2], q[..., 1::2] = self.B & 0xF, self.B >> 4
        return q.reshape(self.N, self.K)

    def zeros(self) -> np.ndarray:
        """The zero point of each block (N, K/32)."""
        nb = self.K // BLOCK
        if self.bits == 8:
            return self.zero_points.reshape(self.N, nb)
        z = self.zero_points.reshape(self.N, -1)
        return np.stack([z & 0xF, z >> 4], -1).reshape(self.N, -1)[:, :nb]

    def dequantize(self) -> np.ndarray:
        """W (N, K) float32, as MatMulNBits (plus the offset term) computes it."""
        nb = self.K // BLOCK
        q = self.codes().reshape(self.N, nb, BLOCK).astype(np.float32)
        w = (q - self.zeros()[..., None]) * self.scales.reshape(self.N, nb, 1)
        if self.offset is not None:
            w += self.offset[..., None]
        return w.reshape(self.N, self.K)

    def rows(self, index: np.ndarray, sign: np.ndarray | float = 1.0) -> "Packed":
        """The matrix of rows `index` of this one, each times its `sign` (+1 or -1): exact for
        every format, since only the scales and offsets change sign."""
        nb = self.K // BLOCK
        sign = np.broadcast_to(np.asarray(sign, np.float32), (len(index),))[:, None]
        return Packed(self.B[index], (sign * self.scales.reshape(self.N, nb)[index]).reshape(-1),
                      _pack_zero_points(self.zeros()[index], self.bits), self.bits,
                      None if self.offset is None else sign * self.offset[index])

    @staticmethod
    def concat(parts: list["Packed"]) -> "Packed":
        """The matrices stacked along N (one MatMulNBits for several projections of one input)."""
        bits = {p.bits for p in parts}
        assert len(bits) == 1, "one MatMulNBits has one bit width"
        offsets = [p.offset for p in parts]
        if any(o is not None for o in offsets):
            offsets = [np.zeros((p.N, p.K // BLOCK), np.float32) if o is None else o for p, o in zip(parts, offsets)]
            offset = np.concatenate(offsets)
        else:
            offset = None
        zp = np.concatenate([p.zeros() for p in parts])
        return Packed(np.concatenate([p.B for p in parts]), np.concatenate([p.scales for p in parts]),
                      _pack_zero_points(zp, bits.pop()), parts[0].bits, offset)


def _pack_zero_points(zp: np.ndarray, bits: int) -> np.ndarray:
    """Zero points (N, n_blocks) in MatMulNBits' layout: a byte each at 8 bits; at 4 bits two
    per byte, low nibble first, each row padded to whole bytes."""
    zp = zp.astype(np.uint8)
    if bits == 8:
        return zp.reshape(-1)
    if zp.shape[1] % 2:
        zp = np.concatenate([zp, np.zeros((zp.shape[0], 1), np.uint8)], 1)
    return (zp[:, 0::2] | (zp[:, 1::2] << 4)).reshape(-1)


def _f16(raw: np.ndarray) -> np.ndarray:
    """Two bytes per row (..., 2) uint8 -> float32."""
    return np.ascontiguousarray(raw).view(np.float16)[..., 0].astype(np.float32)


def _nibbles_to_mnb(qs: np.ndarray) -> np.ndarray:
    """GGUF 4-bit blocks (..., 16) -> MatMulNBits' (..., 16). GGUF puts elements 0..15 in the low
    nibbles and 16..31 in the high ones; MatMulNBits puts element 2i low and 2i+1 high in byte i."""
    q = np.concatenate([qs & 0xF, qs >> 4], -1)  # (..., 32) in element order
    return q[..., 0::2] | (q[..., 1::2] << 4)


def pack(raw: np.ndarray, qtype: Q, n: int, k: int) -> Packed:
    """A quantised GGUF tensor's bytes (N, row bytes) -> Packed."""
    nb = k // BLOCK
    if qtype == Q.Q4_0:  # d f16, 16 bytes of nibbles
        blocks = raw.reshape(n, nb, 18)
        return Packed(_nibbles_to_mnb(blocks[..., 2:]), _f16(blocks[..., :2]).reshape(-1),
                      _pack_zero_points(np.full((n, nb), 8), 4), 4)
    if qtype == Q.Q4_1:  # d f16, m f16, 16 bytes of nibbles
        blocks = raw.reshape(n, nb, 20)
        d, m = _f16(blocks[..., :2]), _f16(blocks[..., 2:4])
        return Packed(_nibbles_to_mnb(blocks[..., 4:]), d.reshape(-1),
                      _pack_zero_points(np.full((n, nb), 8), 4), 4, m + 8 * d)
    if qtype == Q.Q8_0:  # d f16, 32 int8
        blocks = raw.reshape(n, nb, 34)
        q = (blocks[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return Packed(q, _f16(blocks[..., :2]).reshape(-1), _pack_zero_points(np.full((n, nb), 128), 8), 8)
    raise ValueError(f"no MatMulNBits form for {qtype.name}")


PACKABLE = (Q.Q4_0, Q.Q4_1, Q.Q8_0)


class GGUFWeights:
    """The tensors of a llama GGUF by name: `matrix` gives a quantised matrix as Packed (or a
    float32 array when the file stores it unquantised), `array` any tensor as float32.

        w = GGUFWeights(path)
        w.args.n_layers, w.array("blk.0.attn_norm.weight"), w.matrix("blk.0.attn_q.weight")
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.reader = GGUFReader(str(self.path))
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.field("general.architecture")
        if self.arch != "llama":
            raise ValueError(f"{path} is a {self.arch} GGUF, not llama")
        self.args = self._args()

    def field(self, key: str, default=None):
        f = self.reader.fields.get(key)
        return default if f is None else f.contents()

    def _args(self) -> LlamaArgs:
        a = lambda key, default=None: self.field(f"llama.{key}", default)  # noqa: E731
        embd = self.tensors["token_embd.weight"]
        n_heads = a("attention.head_count")
        return LlamaArgs(vocab_size=int(a("vocab_size", embd.shape[1])), d_model=a("embedding_length"),
                         n_layers=a("block_count"), n_heads=n_heads,
                         n_kv_heads=a("attention.head_count_kv", n_heads), ffn_dim=a("feed_forward_length"),
                         norm_eps=float(a("attention.layer_norm_rms_epsilon")),
                         rope_base=float(a("rope.freq_base", 10000.0)),
                         context_length=a("context_length", 2048))

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def qtype(self, name: str) -> Q:
        return Q(self.tensors[name].tensor_type)

    def array(self, name: str) -> np.ndarray:
        """The tensor as float32, numpy shape (ggml's dims reversed)."""
        t = self.tensors[name]
        if self.qtype(name) == Q.F32:
            return np.array(t.data, np.float32).reshape(tuple(reversed([int(x) for x in t.shape])))
        return dequantize(t.data, self.qtype(name)).astype(np.float32).reshape(
            tuple(reversed([int(x) for x in t.shape])))

    def matrix(self, name: str) -> Packed | np.ndarray:
        """A 2-D weight (N, K): Packed when quantised in a form MatMulNBits takes, else float32."""
        t = self.tensors[name]
        k, n = (int(x) for x in t.shape)
        if self.qtype(name) in PACKABLE and k % BLOCK == 0:
            return pack(np.asarray(t.data).reshape(n, -1), self.qtype(name), n, k)
        return self.array(name)

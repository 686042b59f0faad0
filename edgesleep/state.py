"""The runtime's state types: the fast weights, which persist, and the window, which does not.

Each has `state` (its arrays and facts, plain values) and `from_state` (the inverse), as cache
objects do in mlx-lm. The fast weights also own their on-disk encoding, the body of a memory
folder's version files:

    b"EDGESLEEP-FW\\n" | u32 n | n bytes of JSON header | S of each layer, f32, in header order | sha256

The header is the caller's facts (a memory version's fields) plus `layers`: {index: shape}.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

import numpy as np

from edgesleep.config import ModelArgs

MAGIC = b"EDGESLEEP-FW\n"
DIGEST = 32  # sha256


@dataclass
class FastWeights:
    """The GDN state S of every GDN layer, keyed by layer index: (H, dv, dk) float32 each."""

    S: dict[int, np.ndarray]

    @classmethod
    def zeros(cls, a: ModelArgs) -> "FastWeights":
        shape = (a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim)
        return cls({i: np.zeros(shape, np.float32) for i in a.gdn_layers})

    def copy(self) -> "FastWeights":
        return FastWeights({i: s.copy() for i, s in self.S.items()})

    def is_finite(self) -> bool:
        return all(np.isfinite(s).all() for s in self.S.values())

    def fits(self, a: ModelArgs) -> bool:
        """Whether these are a model's fast weights: its GDN layers, its head shapes."""
        shape = (a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim)
        return set(self.S) == set(a.gdn_layers) and all(s.shape == shape for s in self.S.values())

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The arrays by graph input name (`S.<layer>`), as the ONNX graphs take them."""
        return {f"S.{i}": s for i, s in self.S.items()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "FastWeights":
        return cls({int(name.split(".")[1]): np.asarray(s, np.float32) for name, s in state.items()})

    def to_bytes(self, header: dict) -> bytes:
        """The checksummed encoding of these fast weights with the caller's `header` facts."""
        head = json.dumps({**header, "layers": {str(i): list(s.shape) for i, s in self.S.items()}}).encode()
        body = MAGIC + struct.pack("<I", len(head)) + head + b"".join(
            np.ascontiguousarray(s, np.float32).tobytes() for s in self.S.values())
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[dict, "FastWeights"]:
        """(header, fast weights) of `to_bytes`' output; ValueError on any damage."""
        body, digest = data[:-DIGEST], data[-DIGEST:]
        if len(data) < len(MAGIC) + 4 + DIGEST or not body.startswith(MAGIC) \
                or hashlib.sha256(body).digest() != digest:
            raise ValueError("bad checksum")
        n = struct.unpack_from("<I", body, len(MAGIC))[0]
        at = len(MAGIC) + 4
        try:
            header = json.loads(body[at:at + n])
            layers = header.pop("layers")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"bad header ({e})") from None
        at += n
        S = {}
        for i, shape in layers.items():
            size = int(np.prod(shape)) * 4
            if at + size > len(body):
                raise ValueError("shorter than its header says")
            S[int(i)] = np.frombuffer(body[at:at + size], np.float32).reshape(shape).copy()
            at += size
        return header, cls(S)


@dataclass
class Window:
    """Everything that lives only until the next eviction: the tokens of the window (L slots),
    the attention cache and the conv state. The llama.cpp backend keeps the attention cache and
    conv state inside llama.cpp and records `start`, the fast weights the window began from:
    with them and the tokens it rebuilds its cache after `answer` restores an older window."""

    tokens: list[int]
    kv: dict[int, tuple[np.ndarray, np.ndarray]]
    conv: dict[int, np.ndarray]
    length: int
    start: FastWeights | None = None  # never modified in place, so copies share it
    opener: int | None = None  # ModelArgs.window_token: slot 0 holds it, before the text

    @classmethod
    def empty(cls, a: ModelArgs) -> "Window":
        kv = {i: (np.zeros((a.attn_heads, a.window, a.attn_head_dim), np.float32),
                  np.zeros((a.attn_heads, a.window, a.attn_head_dim), np.float32)) for i in a.attn_layers}
        conv = {i: np.zeros((a.conv_channels, a.conv_kernel - 1), np.float32) for i in a.gdn_layers}
        return cls([], kv, conv, a.window, opener=a.window_token)

    @property
    def pos(self) -> int:
        return len(self.tokens)

    @property
    def full(self) -> bool:
        return self.pos == self.length

    @property
    def text(self) -> list[int]:
        """The fed tokens in the window (the opener left out)."""
        return self.tokens[self.opener is not None:]

    def copy(self) -> "Window":
        return Window(list(self.tokens), {i: (k.copy(), v.copy()) for i, (k, v) in self.kv.items()},
                      {i: c.copy() for i, c in self.conv.items()}, self.length, self.start, self.opener)

    @property
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays by graph input name: k.<layer>, v.<layer>, conv.<layer>; the facts: tokens,
        length, opener). `start`, which the backends that keep the attention cache themselves
        record, is not part of it: a window made from a state is fed from its first token."""
        arrays = {f"conv.{i}": c for i, c in self.conv.items()}
        for i, (k, v) in self.kv.items():
            arrays[f"k.{i}"], arrays[f"v.{i}"] = k, v
        return arrays, {"tokens": list(self.tokens), "length": self.length, "opener": self.opener}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> "Window":
        layers = sorted({int(n.split(".")[1]) for n in arrays if n.startswith("k.")})
        kv = {i: (arrays[f"k.{i}"], arrays[f"v.{i}"]) for i in layers}
        conv = {int(n.split(".")[1]): c for n, c in arrays.items() if n.startswith("conv.")}
        return cls(list(meta["tokens"]), kv, conv, meta["length"], opener=meta["opener"])

"""The runtime's state types: the fast weights, which persist, and the window, which does not."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesleep.config import ModelArgs


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

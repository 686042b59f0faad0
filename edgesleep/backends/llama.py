"""A pretrained llama base with GDN memory layers (SmolLM2), on its assembled ONNX graph.

The graph (edgesleep/llama/graph.py) runs a chunk of tokens at once, so a window is fed in one
call and decoding is a call per token. Its attention cache lives in the session, as llama.cpp's
does in the gguf backend: the window records `start`, the fast weights it began from, and a
window that the session no longer holds (after `answer` restored an older one) is rebuilt from
them and its tokens. S and the conv states of the memory layers come back after every call.

A sleep pass is one of two things, as config.json's "sleep" says. "features", the paper's: pass 1
reads the window's tokens, each later pass the features (the residual stream before the final
norm) that the one before left, with S carried over. "reread": every pass reads the window's
tokens again, with S carried over; the base never saw its own features as input, so this may suit
it better. Pass 1 is the wake pass either way, so N = 1 is the ordinary hybrid.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesleep.config import Config
from edgesleep.llama.session import WakeSession
from edgesleep.state import FastWeights, Window


class LlamaBackend:
    name = "onnx"

    def __init__(self, folder: Path, config: Config, threads: int | None = None):
        """`folder`: the assembled graphs (edgesleep/llama/assemble.py)."""
        self.args, self.reread = config.args, config.sleep == "reread"
        self.session = WakeSession(folder / "model.onnx", window=self.args.window, threads=threads or 1)
        if not (self.reread or self.session.features):
            raise ValueError(f"{folder / 'model.onnx'} has no features input: delete the folder to rebuild it")
        if self.session.memories != len(self.args.gdn_layers):
            raise ValueError(f"{folder / 'model.onnx'} has {self.session.memories} memory layers, its config "
                             f"{len(self.args.gdn_layers)}: delete the folder to rebuild it")
        self._live: tuple[Window, int, dict[int, np.ndarray]] | None = None  # what the session holds

    def _start(self, fast: FastWeights) -> None:
        """An empty window from the fast weights `fast`."""
        self.session.reset()
        for m in range(self.session.memories):
            self.session.S[m] = np.ascontiguousarray(fast.S[m], np.float32)

    def feed(self, tokens: list[int], window: Window, fast: FastWeights) -> np.ndarray:
        """Tokens at the next slots of `window`, in one call; the last one's logits."""
        s = self.session
        if not window.pos:
            window.start = fast.copy()
            self._start(fast)
        elif not self._holds(window, fast) and not self._rewind(window, fast):
            self._start(window.start)
            s.feed(window.tokens)
        logits = s.feed(tokens)
        for m in range(s.memories):  # the session hands out fresh arrays every call
            fast.S[m], window.conv[m] = s.S[m], s.conv[m]
        window.tokens.extend(tokens)
        self._live = (window, window.pos, dict(fast.S))
        return logits

    def step(self, token: int, window: Window, fast: FastWeights) -> np.ndarray:
        return self.feed([token], window, fast)

    def _holds(self, window: Window, fast: FastWeights) -> bool:
        if self._live is None:
            return False
        live, pos, S = self._live
        return live is window and pos == window.pos and all(fast.S[i] is x for i, x in S.items())

    def _rewind(self, window: Window, fast: FastWeights) -> bool:
        """Go back to `window` when it is an earlier point of the window the session holds (what
        `answer` restores): its cache rows are still there, and `fast` and its conv states are
        what they were then. A copy of a few arrays instead of reading the window again."""
        if self._live is None:
            return False
        live = self._live[0]
        if live.start is not window.start or live.tokens[:window.pos] != window.tokens:
            return False
        s = self.session
        s.P = window.pos
        for m in range(s.memories):
            s.S[m] = np.ascontiguousarray(fast.S[m], np.float32)
            s.conv[m] = np.ascontiguousarray(window.conv[m], np.float32)
        return True

    def embed(self, tokens: list[int]) -> np.ndarray:
        """Pass 1's input: the window's tokens themselves (the graph embeds them)."""
        return np.asarray(tokens, np.int64)

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        """One pass over a window from `fast`, an empty cache and a zero conv state: over its
        tokens (ids, from embed) or over the previous pass's features (floats). Returns the next
        pass's input (the tokens again when rereading, else this pass's features) and S."""
        self._live = None
        self._start(fast)
        if features.dtype.kind == "i":
            self.session.feed(features)
        else:
            self.session.feed([], h=features)
        out = features if self.reread else self.session.h_out
        return out, FastWeights({m: self.session.S[m] for m in range(self.session.memories)})

    def close(self) -> None:
        """onnxruntime sessions free themselves."""

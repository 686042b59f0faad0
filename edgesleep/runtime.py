"""The runtime: wake steps, eviction and sleep over one model and one memory.

text -> tokens -> backend wake step -> logits. Every L tokens the window is evicted: it is
consolidated into the fast weights with N passes, and the attention cache empties.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgesleep.backends import load_backend
from edgesleep.config import Config
from edgesleep.memory import Memory
from edgesleep.models import resolve
from edgesleep.sleep import SleepCost, sleep
from edgesleep.state import Window
from edgesleep.tokenizer import Tokenizer


class Runtime:
    """One model, one memory. Use `edgesleep.open` to make one."""

    def __init__(self, model_dir: str | Path, memory: str | Path | None = None, backend: str = "onnx",
                 passes: int = 1, threads: int | None = None):
        if memory is not None:
            raise NotImplementedError("persistent memory folders are not available yet; use memory=None")
        if int(passes) < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.model_dir = resolve(model_dir)
        self.config = Config.load(self.model_dir)
        self.tokenizer = Tokenizer.from_file(self.model_dir / "tokenizer.json")
        self.backend = load_backend(backend, self.model_dir, self.config, threads)
        self.passes = int(passes)
        self.memory = Memory(self.config.args)
        self.window = Window.empty(self.config.args)
        self.last_sleep: SleepCost | None = None
        self._logits: np.ndarray | None = None

    # -- wake ---------------------------------------------------------------------------------
    def feed(self, text: str) -> int:
        """Append `text` to the stream; every full window is evicted and consolidated.
        Returns the number of tokens fed."""
        ids = self.tokenizer.encode(text)
        for token in ids:
            self._step(token)
        return len(ids)

    def _step(self, token: int) -> np.ndarray:
        self._logits = self.backend.step(token, self.window, self.memory.fast)
        if self.window.full:
            self._evict()
        return self._logits

    def _evict(self) -> None:
        fast, self.last_sleep = sleep(self.backend, self.window, self.memory.fast, self.passes)
        self.memory.commit(fast, self.window.pos)
        self.window = Window.empty(self.config.args)

    # -- sleep --------------------------------------------------------------------------------
    def sleep(self) -> SleepCost | None:
        """Consolidate the partial window too and clear the attention cache. Idempotent."""
        if self.window.pos:
            self._evict()
        return self.last_sleep

    # -- queries ------------------------------------------------------------------------------
    def answer(self, question: str) -> str:
        """The greedy next token after `question`, from the current state. A pure query: the
        window and the fast weights are restored afterwards."""
        ids = self.tokenizer.encode(question)
        if not ids:
            raise ValueError("empty question")
        saved = (self.window.copy(), self.memory.fast.copy(), self.memory.consolidated.copy(),
                 self.memory.version, self.memory.tokens_consolidated, self.last_sleep, self._logits)
        try:
            for token in ids:
                logits = self._step(token)
            return self.tokenizer.words[self._greedy(logits)]
        finally:
            (self.window, self.memory.fast, self.memory.consolidated, self.memory.version,
             self.memory.tokens_consolidated, self.last_sleep, self._logits) = saved

    def _greedy(self, logits: np.ndarray) -> int:
        logits = logits.copy()
        logits[self.tokenizer.special_ids] = -np.inf
        return int(np.argmax(logits))

    def generate(self, prompt: str, max_tokens: int = 16) -> Iterator[str]:
        """Feed `prompt`, then stream greedy tokens, each fed back into the stream."""
        self.feed(prompt)
        if self._logits is None:
            raise ValueError("generate needs a prompt or earlier input")
        for _ in range(max_tokens):
            token = self._greedy(self._logits)
            self._step(token)
            yield self.tokenizer.words[token]

    # -- housekeeping -------------------------------------------------------------------------
    def reset(self) -> None:
        """Start from empty memory."""
        self.memory.reset()
        self.window = Window.empty(self.config.args)
        self._logits = None

    def status(self) -> dict:
        s = self.last_sleep
        return {
            "model": str(self.model_dir), "backend": self.backend.name, "passes": self.passes,
            "window": {"fill": self.window.pos, "size": self.window.length},
            "tokens_consolidated": self.memory.tokens_consolidated,
            "journal_tokens": self.memory.journal_size, "memory_version": self.memory.version,
            "last_sleep": None if s is None else {
                "tokens": s.tokens, "passes": s.passes, "cpu_s": round(s.cpu_s, 6), "wall_s": round(s.wall_s, 6),
                "cpu_s_per_token_pass": s.cpu_s_per_token_pass},
        }

    def close(self) -> None:
        self.memory.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

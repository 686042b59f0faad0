"""Backends run the model's graphs; the runtime owns all state and passes it in.

A backend is anything with the `Backend` protocol's methods. The wake step updates a window and
the fast weights; the sleep pass is a function of (features, S) -> (features, S). Every backend
sleeps through the ONNX sleep graph (`OnnxSleep`), so the fast weights mean the same under each
and a memory moves freely between them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgesleep.config import Config, ModelArgs
from edgesleep.state import FastWeights, Window


class Backend(Protocol):
    name: str  # as given to load_backend
    args: ModelArgs

    def step(self, token: int, window: Window, fast: FastWeights) -> np.ndarray:
        """One wake step: `token` at the next slot of `window`, which it appends to; `window`'s
        caches and `fast` are updated in place. Returns the next-token logits (vocab,)."""

    def feed(self, tokens: list[int], window: Window, fast: FastWeights) -> np.ndarray:
        """`step` for each of `tokens` (which fit in the window), in as few calls as the backend
        can; the last one's logits."""

    def embed(self, tokens: list[int]) -> np.ndarray:
        """The input of sleep pass 1 for a window of `tokens`: (L, d), zero-padded."""

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        """One sleep pass over a window's features (L, d) from `fast`; returns the next features and S."""

    def close(self) -> None:
        """Free what the backend holds outside Python (llama.cpp's context)."""


def feed_by_steps(backend: Backend, tokens: list[int], window: Window, fast: FastWeights) -> np.ndarray:
    """`feed` for a backend whose wake graph takes one token a call: a step each."""
    for token in tokens:
        logits = backend.step(token, window, fast)
    return logits


def load_backend(name: str, model_dir: Path, config: Config, threads: int | None = None) -> Backend:
    """"onnx"; "gguf" (llama.cpp on model.gguf); "gguf:QUANT" (on model.QUANT.gguf, e.g. q8_0).
    A model over a pretrained base runs on its assembled graph (`model_dir` is that folder)."""
    kind, _, quant = name.partition(":")
    if config.base is not None:
        if name != "onnx":
            raise ValueError(f"backend {name!r}: a llama base with GDN memory layers has no exact llama.cpp "
                             "architecture (qwen35's layers differ from llama's); use the onnx backend")
        from edgesleep.backends.llama import LlamaBackend

        return LlamaBackend(model_dir, config, threads)
    if name == "onnx":
        from edgesleep.backends.onnx import OnnxBackend

        return OnnxBackend(model_dir, config, threads)
    if kind == "gguf":
        from edgesleep.backends.gguf import GgufBackend

        return GgufBackend(model_dir, config, threads, quant or "f32")
    raise ValueError(f"unknown backend {name!r}; available: onnx, gguf, gguf:q8_0")

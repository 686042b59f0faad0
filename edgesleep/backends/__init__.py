"""Backends run the model's graphs; the runtime owns all state and passes it in."""
from __future__ import annotations

from pathlib import Path

from edgesleep.config import Config


def load_backend(name: str, model_dir: Path, config: Config, threads: int | None = None):
    """"onnx"; "gguf" (llama.cpp on model.gguf); "gguf:QUANT" (on model.QUANT.gguf, e.g. q8_0)."""
    kind, _, quant = name.partition(":")
    if name == "onnx":
        from edgesleep.backends.onnx import OnnxBackend

        return OnnxBackend(model_dir, config, threads)
    if kind == "gguf":
        from edgesleep.backends.gguf import GgufBackend

        return GgufBackend(model_dir, config, threads, quant or "f32")
    raise ValueError(f"unknown backend {name!r}; available: onnx, gguf, gguf:q8_0")

"""Backends run the model's graphs; the runtime owns all state and passes it in."""
from __future__ import annotations

from pathlib import Path

from edgesleep.config import Config


def load_backend(name: str, model_dir: Path, config: Config, threads: int | None = None):
    if name == "onnx":
        from edgesleep.backends.onnx import OnnxBackend

        return OnnxBackend(model_dir, config, threads)
    raise ValueError(f"unknown backend {name!r}; available: onnx")

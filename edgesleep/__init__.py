"""edgesleep: an on-device runtime that lets a small hybrid language model sleep.

    import edgesleep
    with edgesleep.open("models/facts", passes=4) as rt:
        rt.feed("alice lives in paris . ...")
        rt.sleep()
        rt.answer("where does alice live ?")   # -> "paris"
"""
from __future__ import annotations

from pathlib import Path

from edgesleep.runtime import Runtime

__version__ = "0.1.0"
__all__ = ["open", "Runtime", "__version__"]


def open(model: str | Path, memory: str | Path | None = None, backend: str = "onnx",
         passes: int | None = None, threads: int | None = None) -> Runtime:  # noqa: A001 - mirrors the contract
    """Open `model` (a model directory or bundled model name) with a memory (a folder, or None
    for an ephemeral one). `passes`: the N of a deep sleep (default: the deepest the model was
    trained for)."""
    return Runtime(model, memory=memory, backend=backend, passes=passes, threads=threads)

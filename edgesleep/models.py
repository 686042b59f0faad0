"""Where model directories are found: a path, or the name of a bundled model."""
from __future__ import annotations

import os
from pathlib import Path

BUNDLED = Path(os.environ.get("EDGESLEEP_MODELS", Path(__file__).resolve().parents[1] / "models"))


def resolve(model: str | Path) -> Path:
    """`model` as given if it is a directory, else the bundled model of that name."""
    path = Path(model)
    if path.is_dir():
        return path
    if (BUNDLED / str(model)).is_dir():
        return BUNDLED / str(model)
    raise FileNotFoundError(f"no model directory at {model}" + (
        f" (bundled models: {', '.join(sorted(p.name for p in BUNDLED.iterdir() if p.is_dir()))})"
        if BUNDLED.is_dir() else ""))

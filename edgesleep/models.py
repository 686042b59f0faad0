"""Where model directories are found: a path, or the name of a bundled model.

The bundled models are the package `edgesleep.bundled` (the repository's models/ folder), found
through the import system, so the same names work in an editable install of a checkout and in an
installed wheel (a checkout merely on PYTHONPATH has no such package: pass model paths there).
$EDGESLEEP_MODELS, when set, is searched first.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def bundled_folders() -> list[Path]:
    """Where bundled model names are looked up, in order."""
    folders = [Path(os.environ["EDGESLEEP_MODELS"])] if os.environ.get("EDGESLEEP_MODELS") else []
    spec = importlib.util.find_spec("edgesleep.bundled")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) for p in spec.submodule_search_locations]
    return folders


def resolve(model: str | Path) -> Path:
    """`model` as given if it is a directory, else the bundled model of that name."""
    path = Path(model)
    if path.is_dir():
        return path
    folders = bundled_folders()
    for folder in folders:
        if (folder / str(model)).is_dir():
            return folder / str(model)
    names = sorted({p.name for f in folders if f.is_dir() for p in f.iterdir()
                    if p.is_dir() and (p / "config.json").exists()})
    raise FileNotFoundError(f"no model directory at {model}" + (f" (bundled models: {', '.join(names)})" if names else ""))

"""Write a model folder's untrained memory layers: random projections and a zero output
projection, so that the base answers exactly as it does alone until they are trained.

    python -m export.memory_layers models/smollm2     # reads memory_layers and d_model from its config.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgesleep.config import Config
from edgesleep.llama.assemble import MEMORY_FILE, write_safetensors
from edgesleep.llama.graph import MemoryArgs, init_memory


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    config = Config.load(args.model_dir)
    weights = init_memory(MemoryArgs(**config.memory_layers), config.args.d_model, args.seed)
    # projections in f16 halve the file; the zero output and the small vectors stay f32
    write_safetensors(args.model_dir / MEMORY_FILE, {k: v.astype(np.float16) if v.ndim == 2 and not k.endswith(".out")
                                                     else v for k, v in weights.items()})
    print(args.model_dir / MEMORY_FILE)


if __name__ == "__main__":
    main()

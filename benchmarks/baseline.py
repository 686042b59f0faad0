"""The bench's baseline: a full-attention transformer of the same width and depth as a model
directory's hybrid, whose KV cache keeps the whole context and grows with it.

Every layer is the hybrid's attention layer (qwen35 gated attention, RoPE) and the same MLP;
the weights are random (seeded): latency does not depend on them. One ONNX graph, a decode step:

    token (1,), pos (1,), k.<j>/v.<j> (T, H, hd) for every layer j, T = tokens seen (dynamic)
    -> logits (V,), k.<j>.new/v.<j>.new (1, H, hd): the new token's entries only

The caller owns the cache as one buffer per layer, (T_max, H, hd) row-major, and passes the
first T rows, a contiguous view, so no step copies the cache; the graph reads it once (two
matmuls per layer), the least full attention can do. The file is named after the dims
(benchmarks.bench.baseline_name), where `edgesleep bench` looks it up in benchmarks/baseline/:

    python -m benchmarks.baseline --model models/facts --out benchmarks/baseline
"""
from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn

from benchmarks.bench import baseline_name
from edgesleep.config import Config, ModelArgs
from export.model import Attention, Model


def attend(attn: Attention, x: torch.Tensor, pos: torch.Tensor, k_past: torch.Tensor, v_past: torch.Tensor):
    """One token against a cache of T past tokens (T, H, hd) without concatenating it: the past
    scores are one matmul of the flat cache (T, H*hd) with the block-diagonal query (H*hd, H),
    the output one matmul of the probabilities with the flat values; H times the FLOPs of
    per-head products but each cache read once, and no transpose or copy of the cache."""
    H, hd = attn.h, attn.hd
    q, k, v, gate = attn._qkv(x, pos)  # (1, H, 1, hd)
    q, k, v = q[0, :, 0], k[0, :, 0], v[0, :, 0]  # (H, hd)
    eye = torch.eye(H)
    q_blocks = (q[:, :, None] * eye[:, None, :]).reshape(H * hd, H)
    scores = torch.cat([k_past.reshape(-1, H * hd) @ q_blocks, (q * k).sum(-1)[None]]) / math.sqrt(hd)
    p = torch.softmax(scores, dim=0)  # (T + 1, H)
    mixed = (p[:-1].T @ v_past.reshape(-1, H * hd)).reshape(H, H, hd)
    out = (mixed * eye[:, :, None]).sum(1) + p[-1][:, None] * v
    return attn._out(out[None, :, None], gate), k[None], v[None]


class DecodeStep(nn.Module):
    def __init__(self, model: Model):
        super().__init__()
        self.m = model

    def forward(self, token, pos, *cache):
        m, cache, new = self.m, list(cache), []
        h = m.embed(token)[None]  # (1, 1, d)
        for block in m.blocks:
            y, k, v = attend(block.mixer, block.attn_norm(h), pos, cache.pop(0), cache.pop(0))
            new += [k, v]
            h = block.ffn(h + y)
        return (m.logits(h)[0, 0], *new)


def export_baseline(args: ModelArgs, out: Path, seed: int = 0) -> Path:
    """Write the baseline graph for `args` into folder `out`; returns its path."""
    a = replace(args, layer_types=["attention"] * len(args.layer_types))
    torch.manual_seed(seed)
    model = Model(a).eval()
    out.mkdir(parents=True, exist_ok=True)
    path = out / baseline_name(args)
    names = [f"{kv}.{j}" for j in range(len(a.layer_types)) for kv in "kv"]
    # T = 2 in the example: torch specialises dims of size 0 and 1
    cache = [torch.zeros(2, a.attn_heads, a.attn_head_dim) for _ in names]
    past = torch.export.Dim("past", min=1, max=1 << 24)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            DecodeStep(model), (torch.zeros(1, dtype=torch.long), torch.full((1,), 2, dtype=torch.long), *cache),
            str(path), input_names=["token", "pos", *names], output_names=["logits", *[n + ".new" for n in names]],
            dynamic_shapes=(None, None, tuple({0: past} for _ in names)), dynamo=True, external_data=False,
            verbose=False)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model directory whose dims the baseline copies")
    p.add_argument("--out", default="benchmarks/baseline")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(export_baseline(Config.load(a.model).args, Path(a.out), a.seed))


if __name__ == "__main__":
    main()

"""Accuracy baselines for the sleep models: one all-attention transformer, trained two ways.

    python -m benchmarks.train_baselines --kind full --task facts --out runs/base-facts-full \\
        --budget-minutes 25 --param people=2-8 --param questions=20 \\
        --results benchmarks/results/baselines-facts.json

The model is export/model.py's with every layer `attention`: the hybrid's width, depth, block,
MLP, RoPE and tied embeddings, no GDN layer, so no fast weights.
- `--kind full` (upper bound): it keeps its whole context; each question is asked with the
  whole context in attention, the answer read at the question's last token.
- `--kind window` (floor): a sliding-window transformer. Its cache is evicted every L tokens as
  in the hybrid, and the task contract evicts the last partial context window before the question; with
  no fast weights nothing of the context survives, so the question alone is its input. It is
  trained as exactly that (the context windows' passes could not change its answer).

Training data come from export.train.make_batch: the hybrid's distribution, and the same batch
for the same (seed, step). For `full`, each example is one sequence: its context, left-padded,
then its questions, each in a block that sees the context and itself only, at the positions it
would have right after the context. RoPE is relative, so this is the same as asking each
question on its own after the context (tests/test_train_baselines.py checks it); it costs
one context pass per example instead of one per question.

At the end the run scores the model cards' held-out set (edgesleep/eval.py: 200 examples from
default_rng(1234) with task.eval_params), greedy over non-special tokens like Runtime.answer,
writes heldout.json to --out and, with --results, merges it into that JSON under the kind.
Rerunning the same command resumes from the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgesleep.config import ModelArgs
from edgesleep.tasks import get_task
from edgesleep.tokenizer import Tokenizer
from export.model import Model
from export.train import (answer_logits, common_args, fit, held_out, load_checkpoint, make_batch, parse_params,
                          to_device)

KINDS = ("full", "window")


def attention_only(vocab_size: int, d_model: int, window: int) -> ModelArgs:
    """The hybrid's sizes (config defaults) with every layer an attention layer."""
    args = ModelArgs(vocab_size=vocab_size, d_model=d_model, window=window)
    args.layer_types = ["attention"] * len(args.layer_types)
    return args


def pack(batch: dict, pad_id: int) -> dict:
    """A make_batch batch as one sequence per example: [left-padded context | Q question blocks
    of Tq tokens]. Returns the tokens (B, T), RoPE positions (T,), the attention mask (B, T, T)
    and, per question, the row and column where its answer is read."""
    tokens, mask = batch["tokens"].flatten(1), batch["mask"].flatten(1).bool()
    B, Q = tokens.shape[0], batch["per_example"]
    Tq = batch["q_tokens"].shape[1]
    lengths = mask.sum(1).tolist()
    Tc = max(lengths)
    # Left padding puts every context's end at Tc, so all questions share positions Tc, Tc+1, ...
    ctx = torch.full((B, Tc), pad_id, device=tokens.device)
    for b, n in enumerate(lengths):
        ctx[b, Tc - n:] = tokens[b][mask[b]]
    seq = torch.cat([ctx, batch["q_tokens"].view(B, Q * Tq)], dim=1)
    T = seq.shape[1]
    dev = seq.device
    block = torch.cat([torch.full((Tc,), -1, device=dev), torch.arange(Q, device=dev).repeat_interleave(Tq)])
    pos = torch.cat([torch.arange(Tc, device=dev), Tc + torch.arange(Tq, device=dev).repeat(Q)])
    i = torch.arange(T, device=dev)
    sees = (i[None, :] <= i[:, None]) & ((block[None, :] == -1) | (block[None, :] == block[:, None]))
    # Pads are never keys; every query keeps itself so that a pad's softmax row is not empty.
    attn_mask = (sees[None] & (seq != pad_id)[:, None, :]) | torch.eye(T, dtype=torch.bool, device=dev)
    n = torch.arange(B * Q, device=dev)
    return {"seq": seq, "pos": pos, "mask": attn_mask, "row": n // Q, "col": Tc + (n % Q) * Tq + batch["q_last"]}


def full_logits(model: Model, packed: dict) -> torch.Tensor:
    """The answer logits of every packed question: model.window's blocks, with positions and a
    mask instead of a plain causal window."""
    h = model.embed(packed["seq"])
    for block in model.blocks:
        q, k, v, gate = block.mixer._qkv(block.attn_norm(h), packed["pos"])
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=packed["mask"][:, None])
        h = block.ffn(h + block.mixer._out(att, gate))
    return model.logits(h[packed["row"], packed["col"]])


def baseline_logits(model: Model, kind: str, batch: dict, pad_id: int) -> torch.Tensor:
    """(B*Q, V) answer logits. `window`: export.train's question pass with no state at all."""
    return full_logits(model, pack(batch, pad_id)) if kind == "full" else answer_logits(model, batch, [])


@torch.no_grad()
def accuracy(model: Model, kind: str, batches: list[dict], tok: Tokenizer) -> tuple[dict, dict]:
    """Accuracy and question count per kind, greedy over non-special tokens (Runtime.answer)."""
    right: dict[str, int] = {}
    total: dict[str, int] = {}
    for batch in batches:
        logits = baseline_logits(model, kind, batch, tok.pad_id)
        logits[:, tok.special_ids] = -math.inf
        for qkind, ok in zip(batch["kinds"], (logits.argmax(-1) == batch["answers"]).tolist()):
            right[qkind] = right.get(qkind, 0) + ok
            total[qkind] = total.get(qkind, 0) + 1
    return {k: right[k] / total[k] for k in sorted(total)}, dict(sorted(total.items()))


def heldout_batches(task, tok: Tokenizer, window: int, task_config: dict, examples: int = 200,
                    seed: int = 1234, chunk: int = 50) -> list[dict]:
    """The model cards' held-out set: make_batch draws nothing from rng but task.sample, so
    successive batches from default_rng(seed) hold exactly edgesleep/eval.py's examples."""
    rng = np.random.default_rng(seed)
    params = task.eval_params(task_config)
    return [make_batch(task, tok, rng, min(chunk, examples - i), window, params) for i in range(0, examples, chunk)]


def record(path: Path, kind: str, result: dict) -> None:
    """Merge one baseline's held-out result into a results file shared by the kinds."""
    data = json.loads(path.read_text()) if path.exists() else {}
    for key in ("task", "examples", "seed", "counts"):
        if key in data and data[key] != result[key]:
            raise ValueError(f"{path} holds {key}={data[key]!r}, this run {result[key]!r}")
        data[key] = result[key]
    data.setdefault("baselines", {})[kind] = {"accuracy": result["accuracy"], "train": result["train"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, steps=100_000, eval_every=250, threads=1)
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--heldout-examples", type=int, default=200)
    ap.add_argument("--results", type=Path, help="a JSON file to merge the held-out result into")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tok = Tokenizer.from_words(task.VOCAB)
    margs = attention_only(len(tok), args.d_model, args.window)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "ckpt.safetensors"
    command = "python -m benchmarks.train_baselines " + shlex.join(sys.argv[1:] if argv is None else argv)

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = Model(margs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    step, elapsed = 0, 0.0
    if ckpt.exists():
        meta = load_checkpoint(ckpt, model, opt)
        step, elapsed = meta["step"], meta["elapsed"]
        print(f"resuming {ckpt} at step {step}")
    (args.out / "args.json").write_text(json.dumps(
        {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "model": asdict(margs), "command": command}, indent=1))

    params = {**task.DEFAULTS, **parse_params(args.param)}
    held = held_out(task, tok, params, args, device)
    step, elapsed, finished = fit(
        model, opt, args, task, tok, params,
        lambda batch, rng: F.cross_entropy(baseline_logits(model, args.kind, batch, tok.pad_id), batch["answers"]),
        lambda: accuracy(model, args.kind, held, tok)[0], step, elapsed, {"kind": args.kind})
    if not finished:
        return  # the held-out score is for finished runs

    seed = 1234
    task_config = {k: params[k] for k in task.CONFIG_KEYS if k in params}
    batches = heldout_batches(task, tok, margs.window, {"name": args.task, **task_config}, args.heldout_examples, seed)
    heldout = [to_device(b, device) for b in batches]
    acc, counts = accuracy(model, args.kind, heldout, tok)
    result = {"task": args.task, "examples": args.heldout_examples, "seed": seed, "kind": args.kind,
              "accuracy": acc, "counts": counts,
              "train": {"command": command, "seed": args.seed, "steps": step, "wall_s": round(elapsed),
                        "batch": args.batch, "lr": args.lr, "params": args.param, "device": args.device,
                        "threads": args.threads}}
    (args.out / "heldout.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"heldout": acc, "counts": counts}), flush=True)
    if args.results:
        record(args.results, args.kind, result)


if __name__ == "__main__":
    main()

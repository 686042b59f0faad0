"""Build a model directory from a training run: ONNX graphs, tokenizer, config, weights, card.

    python -m export.build --run runs/facts --out models/facts
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from edgesleep.config import Config, ModelArgs
from edgesleep.eval import evaluate
from edgesleep.tasks import get_task
from edgesleep.tokenizer import Tokenizer
from export.model import Model
from export.to_gguf import export_gguf
from export.to_onnx import export_onnx
from export.train import load_checkpoint, parse_params, parse_passes


def build(run: Path, out: Path, eval_examples: int = 200, eval_passes: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    run_args = json.loads((run / "args.json").read_text())
    margs = ModelArgs.from_dict(run_args["model"])
    model = Model(margs)
    meta = load_checkpoint(run / "ckpt.safetensors", model)
    lo, hi = parse_passes(run_args["passes"])
    train = {"command": " ".join(["python -m export.train", *run_args.get("argv", [])]),
             "seed": meta["seed"], "steps": meta["step"], "wall_s": round(meta["elapsed"]),
             "passes": run_args["passes"], "batch": run_args["batch"], "lr": run_args["lr"],
             "init": run_args.get("init"), "init_step": run_args.get("init_step"),
             "params": run_args.get("param", [])}
    tmp = out.with_name(out.name + ".tmp")
    config = write_model_dir(model, tmp, run_args["task"], list(range(lo, hi + 1)), train)

    def progress(done: int, total: int) -> None:
        print(f"\r  eval {done}/{total}", end="", file=sys.stderr, flush=True)

    metrics = evaluate(tmp, list(eval_passes), examples=eval_examples, progress=progress)
    print(file=sys.stderr)
    metrics["train"] = train
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (tmp / "card.md").write_text(card(out.name, config, metrics))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return metrics


def write_model_dir(model: Model, out: Path, task: str, passes: list[int], train: dict) -> Config:
    """Everything the runtime loads: tokenizer.json, config.json, the ONNX graphs, the f32
    GGUF for llama.cpp, and the weights (safetensors, for later exports)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    module = get_task(task)
    Tokenizer.from_words(module.VOCAB).save(out / "tokenizer.json")
    params = parse_params(train.get("params", []))
    config = Config(model.args, {"name": task, **{k: list(v) for k, v in module.DEFAULTS.items()},
                                 **{k: params[k] for k in module.CONFIG_KEYS if k in params}}, passes, train)
    (out / "config.json").write_text(config.to_json())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
    export_onnx(model, out)
    export_gguf(model, out / "model.gguf", model.args.vocab_size)
    return config


def card(name: str, config: Config, metrics: dict) -> str:
    t = config.train
    kinds = list(metrics["counts"])
    rows = "\n".join(f"| {n} | " + " | ".join(f"{acc[k]:.3f}" for k in kinds) + " |"
                     for n, acc in metrics["accuracy"].items())
    a = config.args
    return f"""# {name}

A {sum(1 for _ in a.layer_types)}-layer hybrid ({", ".join(a.layer_types)}), d={a.d_model}, window L={a.window},
trained on `{metrics['task']}` with the paper's Algorithm 1, sleep passes {t['passes']} per context window.

## How it was trained
- command: `{t['command']}`
- seed {t['seed']}, {t['steps']} steps, batch {t['batch']}, lr {t['lr']}, {t['wall_s']} s of wall time (2 CPU cores)
- warm start: {f"{t['init']} at step {t['init_step']}" if t['init'] else 'none'}

## Held-out accuracy (through the public API)
{metrics['examples']} examples from seed {metrics['seed']} (`edgesleep eval --model models/{name} --passes ...`);
questions per kind: {", ".join(f"{k} {metrics['counts'][k]}" for k in kinds)}.
Each question is answered from the fast weights alone: the context was consolidated and the
attention cache cleared before it.

| passes N | {" | ".join(kinds)} |
|---|{"---|" * len(kinds)}
{rows}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--eval-examples", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(2)
    metrics = build(args.run, args.out, args.eval_examples)
    print(json.dumps(metrics["accuracy"], indent=1))


if __name__ == "__main__":
    main()

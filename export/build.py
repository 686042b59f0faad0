"""Build a model directory from a training run: ONNX graphs, tokenizer, config, weights, card.

    python -m export.build --run runs/facts --out models/facts
    python -m export.build --out models/facts --card-only    # re-evaluate, rewrite the card
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from edgesleep.cli import positive_ints
from edgesleep.config import Config, ModelArgs
from edgesleep.eval import evaluate, measured_passes
from edgesleep.progress import Progress
from edgesleep.tasks import get_task, kind_order, vocabulary
from edgesleep.tokenizer import Tokenizer
from export.model import Model
from export.to_gguf import export_gguf
from export.to_onnx import export_onnx
from export.train import load_checkpoint, parse_params, parse_passes


def load_run(run: Path) -> tuple[Model, dict, dict]:
    """A training run's model at its checkpoint, its args.json, and the checkpoint's meta."""
    run_args = json.loads((run / "args.json").read_text())
    model = Model(ModelArgs.from_dict(run_args["model"]))
    meta = load_checkpoint(run / "ckpt.safetensors", model)
    return model, run_args, meta


def task_config(task: str, params: list[str]) -> dict:
    """config.json's task: its name, the training ranges, and the parameters that define it."""
    module, values = get_task(task), parse_params(params)
    return {"name": task, **{k: list(v) for k, v in module.DEFAULTS.items()},
            **{k: values[k] for k in module.CONFIG_KEYS if k in values}}


EVAL_PASSES = (1, 2, 4, 8)  # the N a card is evaluated at, unless --eval-passes says otherwise


def build(run: Path, out: Path, eval_examples: int = 200, eval_passes: tuple[int, ...] = EVAL_PASSES) -> dict:
    model, run_args, meta = load_run(run)
    lo, hi = parse_passes(run_args["passes"])
    stages = lineage(run, meta["step"])
    train = {"command": stages[-1]["command"], "seed": meta["seed"], "steps": meta["step"],
             "wall_s": round(meta["elapsed"]), "passes": run_args["passes"], "batch": run_args["batch"],
             "lr": run_args["lr"], "init": run_args.get("init"), "init_step": run_args.get("init_step"),
             "params": run_args.get("param", []), "stages": stages,
             "total_steps": sum(s["steps"] for s in stages), "total_wall_s": sum(s["wall_s"] for s in stages)}
    tmp = out.with_name(out.name + ".tmp")
    write_model_dir(model, tmp, run_args["task"], list(range(lo, hi + 1)), train)
    metrics = write_card(tmp, out.name, eval_examples, eval_passes)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return metrics


def write_card(model_dir: Path, name: str, eval_examples: int = 200,
               eval_passes: tuple[int, ...] = EVAL_PASSES) -> dict:
    """Evaluate a model directory through the public API and write its metrics.json and card.md
    (also on its own, to refresh the cards of shipped models after a runtime change)."""
    config = Config.load(model_dir)
    progress = Progress(f"  eval {name}", len(eval_passes) * eval_examples)
    metrics = evaluate(model_dir, list(eval_passes), examples=eval_examples, progress=progress)
    metrics["train"] = config.train
    (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (model_dir / "card.md").write_text(card(name, config, metrics))
    return metrics


def card_passes(model_dir: Path) -> list[int]:
    """The N a model's card was evaluated at, so that refreshing it keeps them (rule110's has N = 3 and 6)."""
    metrics = model_dir / "metrics.json"
    if not metrics.exists():
        return list(EVAL_PASSES)
    return measured_passes(json.loads(metrics.read_text()))


def lineage(run: Path, upto: int | None = None) -> list[dict]:
    """The chain of warm starts that made a run, oldest first: each stage's command, device,
    passes, steps and wall time, up to the step its child started from (for `run` itself, up to
    `upto`: the step of the checkpoint built from, since a run stopped by hand logs past it). A
    run made elsewhere (a GPU lease) names its parent by that machine's path, so a parent is
    looked up beside the run by folder name first; a parent found nowhere ends the chain with a
    stage marked missing."""
    stages, seen = [], set()
    while run is not None and run.resolve() not in seen:
        seen.add(run.resolve())
        if not (run / "args.json").exists() and (run / "config.json").exists():  # a shipped model's stages
            stages.extend(reversed(json.loads((run / "config.json").read_text())["train"].get("stages", [])))
            break
        if not (run / "args.json").exists():
            stages.append({"run": run.name, "missing": True, "command": "", "device": "?", "passes": "?",
                           "batch": "?", "seed": "?", "steps": upto or 0, "wall_s": 0})
            break
        args = json.loads((run / "args.json").read_text())
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]
        log = [r for r in log if upto is None or r["step"] <= upto]  # what the child started from
        command = args.get("command") or " ".join(["python -m export.train", *args.get("argv", [])])
        stages.append({"run": run.name, "command": command,
                       "device": args.get("device", "cpu"), "passes": args["passes"], "batch": args["batch"],
                       "seed": args["seed"], "steps": log[-1]["step"] if log else 0,
                       "wall_s": round(log[-1]["elapsed"]) if log else 0})
        init, upto = args.get("init"), args.get("init_step")
        sibling = run.parent / Path(init).name if init else None
        run = None if not init else sibling if sibling.exists() else Path(init)
    return stages[::-1]


def write_model_dir(model: Model, out: Path, task: str, passes: list[int], train: dict) -> Config:
    """Everything the runtime loads: tokenizer.json, config.json, the ONNX graphs, the f32 and
    Q8_0 GGUFs for llama.cpp, and the weights (safetensors, for later exports)."""
    words = vocabulary(get_task(task), parse_params(train.get("params", [])))
    tok = Tokenizer.from_words(words, model.args.window_token is not None)
    if len(tok) != model.args.vocab_size:  # e.g. rule110 weights trained with cell words, built without `cells`
        raise ValueError(f"the {task} tokenizer has {len(tok)} words, the model {model.args.vocab_size} "
                         "embedding rows: it was trained with another vocabulary")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tok.save(out / "tokenizer.json")
    config = Config(model.args, task_config(task, train.get("params", [])), passes, train)
    (out / "config.json").write_text(config.to_json())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
    export_onnx(model, out)
    export_gguf(model, out / "model.gguf", model.args.vocab_size)
    export_gguf(model, out / "model.q8_0.gguf", model.args.vocab_size, quant="q8_0")
    return config


def card(name: str, config: Config, metrics: dict) -> str:
    t = config.train
    kinds = sorted(metrics["counts"], key=kind_order)
    rows = "\n".join(f"| {n} | " + " | ".join(f"{acc[k]:.3f}" for k in kinds) + " |"
                     for n, acc in metrics["accuracy"].items())
    a = config.args
    gpu = "; `cuda` stages ran on a GPU lease, several runs sharing one GPU" \
        if any(s["device"] == "cuda" for s in t.get("stages", [])) else ""
    stage_rows = "\n".join(f"| {s['run']} | {s['device']} | {s['passes']} | {s['batch']} | {s['seed']} | {s['steps']} "
                           f"| {s['wall_s']} | `{s['command']}` |" for s in t.get("stages", []))
    lost = [s["run"] for s in t.get("stages", []) if s.get("missing")]
    if lost:
        stage_rows += (f"\n\nThe chain stops at {lost[0]}, whose run was not kept: the totals leave out it and the "
                       "stages before it (their commands and minutes are in research/notebook.md).")
    return f"""# {name}

A {sum(1 for _ in a.layer_types)}-layer hybrid ({", ".join(a.layer_types)}), d={a.d_model}, window L={a.window},
trained on `{metrics['task']}` with the paper's Algorithm 1, sleep passes {t['passes']} per context window.

## How it was trained
{t.get('total_steps', t['steps'])} optimizer steps in all, {t.get('total_wall_s', t['wall_s'])} s of wall time, in these stages
(each warm-starts from the one before{gpu}):

| stage | device | passes | batch | seed | steps | wall s | command |
|---|---|---|---|---|---|---|---|
{stage_rows}

## Held-out accuracy (through the public API)
{metrics['examples']} examples from seed {metrics['seed']} (`edgesleep eval --model models/{name} --passes ...`);
questions per kind: {", ".join(f"{k} {metrics['counts'][k]}" for k in kinds)}.
Each question is answered from the fast weights alone: the context was consolidated and the
attention cache cleared before it.

| passes N | {" | ".join(kinds)} |
|---|{"---|" * len(kinds)}
{rows}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="the training run to build from")
    ap.add_argument("--out", type=Path, required=True, help="the model directory")
    ap.add_argument("--eval-examples", type=int, default=200)
    ap.add_argument("--eval-passes", type=positive_ints,
                    help="the passes N the card evaluates at, e.g. 1,2,4,6,8 (default: with --run "
                         f"{','.join(map(str, EVAL_PASSES))}; with --card-only, the N the card has)")
    ap.add_argument("--card-only", action="store_true", help="re-evaluate --out and rewrite its card")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.card_only:
        metrics = write_card(args.out, args.out.name, args.eval_examples,
                             tuple(args.eval_passes or card_passes(args.out)))
    elif args.run:
        metrics = build(args.run, args.out, args.eval_examples, tuple(args.eval_passes or EVAL_PASSES))
    else:
        ap.error("give --run, or --card-only")
    print(json.dumps(metrics["accuracy"], indent=1))


if __name__ == "__main__":
    main()

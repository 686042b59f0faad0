"""Train a sleep model with the paper's Algorithm 1. A plain loop; resumable.

    python -m export.train --task facts --out runs/facts --steps 4000 --passes 1
    python -m export.train --task facts --out runs/facts-any --init runs/facts --passes 1-4

Each example's context is cut into windows of L tokens (the last one partial, padded and
masked). Every context window gets N passes (S carried over, features fed back); each question
is then one pass from the consolidated S, with cross-entropy on its one answer token.
`--passes 1-4` samples N per window ("anytime sleep"). Checkpoints (safetensors) and a JSON-lines
log go to --out; rerunning the same command resumes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from edgesleep.tasks import get_task, rule110, vocabulary
from edgesleep.tokenizer import Tokenizer
from edgesleep.config import ModelArgs
from export.model import Model


def parse_passes(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition("-")
    return int(lo), int(hi or lo)


def parse_params(items: list[str]) -> dict:
    """`--param people=2-8 --param questions=20` -> {"people": (2, 8), "questions": 20}."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        lo, _, hi = value.partition("-")
        out[key] = (int(lo), int(hi)) if hi else int(lo)
    return out


def batch_params(params: dict, rng: np.random.Generator) -> dict:
    """One size per batch (e.g. one P for facts) keeps padding small; over many batches the
    sizes still cover each range."""
    return {k: (v, v) if isinstance(r, tuple) else r for k, r in params.items()
            for v in [int(rng.integers(r[0], r[1] + 1)) if isinstance(r, tuple) else r]}


def make_batch(task, tok: Tokenizer, rng: np.random.Generator, batch: int, L: int, params: dict):
    """Tensors for one batch: context windows (B, W, L) with a mask, questions (B*Q, T), the
    index of each question's last token, the answer ids, and the parameters drawn for it. With
    a window token (`<w>`) in the vocabulary it opens every window, which then holds L - 1 tokens
    of text, and every question (asked from a fresh window), as the runtime does."""
    examples = [task.sample(rng, **params) for _ in range(batch)]
    ctx = [tok.encode(e.context) for e in examples]
    opener = tok.window_id
    if opener is not None:
        ctx = [[t for i in range(0, len(c), L - 1) for t in [opener, *c[i: i + L - 1]]] for c in ctx]
    W = max(math.ceil(len(c) / L) for c in ctx)
    tokens = torch.full((batch, W * L), tok.pad_id)
    mask = torch.zeros(batch, W * L)
    for b, c in enumerate(ctx):
        tokens[b, : len(c)] = torch.tensor(c)
        mask[b, : len(c)] = 1
    qs = [([opener] if opener is not None else []) + tok.encode(q.text) for e in examples for q in e.questions]
    T = max(map(len, qs))
    q_tokens = torch.full((len(qs), T), tok.pad_id)
    for i, q in enumerate(qs):
        q_tokens[i, : len(q)] = torch.tensor(q)
    return {
        "tokens": tokens.view(batch, W, L), "mask": mask.view(batch, W, L),
        "q_tokens": q_tokens, "q_last": torch.tensor([len(q) - 1 for q in qs]),
        "answers": torch.tensor([tok.vocab[q.answer] for e in examples for q in e.questions]),
        "per_example": len(examples[0].questions),
        "kinds": [q.kind for e in examples for q in e.questions],
        "params": params,
    }


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def consolidate(model: Model, batch: dict, passes, trace: dict | None = None) -> list[torch.Tensor]:
    """Algorithm 1's context side: every window gets N passes. `passes` is an int or a callable
    that draws N for each window. `trace`: a dict to fill with each window's features, a list
    of one (B, L, d) per pass."""
    tokens, mask = batch["tokens"], batch["mask"]
    S = model.empty_state(tokens.shape[0])
    for w in range(tokens.shape[1]):
        n = passes() if callable(passes) else passes
        _, S = model.sleep(tokens[:, w], S, n, mask[:, w], trace=None if trace is None else trace.setdefault(w, []))
    return S


def ring_loss(model: Model, batch: dict, trace: dict, k: int, tok: Tokenizer) -> torch.Tensor:
    """--ring-loss: after pass n over a string, the features at position p, read through the LM
    head, should be cell p - k n at step k n (cyclic). So every pass must hand the whole ring on,
    k steps further, where a cell-0 question rewards only the apex of cell 0's light cone.
    The layout shifts by k a pass because attention is causal: position p
    then needs only positions p - 2k ... p of the pass before, the same map at every pass. In
    pass 1 the positions below 2k would need cells not yet seen, so they are left out; later
    passes can find those through S."""
    losses = []
    for w, features in trace.items():
        for n, h in enumerate(features, 1):
            keep = slice(2 * k, None) if n == 1 else slice(None)
            ids = ring_target(batch["tokens"][:, w], tok, k * n)[:, keep]
            losses.append(F.cross_entropy(model.logits(h[:, keep]).flatten(0, 1), ids.flatten()))
    return torch.stack(losses).mean()


def ring_target(tokens: torch.Tensor, tok: Tokenizer, t: int) -> torch.Tensor:
    """The token ids of a window of cells (B, 24) after t steps, shifted t places: position p
    holds cell p - t, as --ring-loss asks after pass n with t = k n."""
    cells = (tokens == tok.vocab["1"]).long().cpu().numpy()
    ring = torch.as_tensor(np.roll(rule110.evolve(cells, t), t, axis=1), device=tokens.device)
    return torch.where(ring == 1, tok.vocab["1"], tok.vocab["0"])


def drop_state(S: list[torch.Tensor], p: float, rng: np.random.Generator) -> list[torch.Tensor]:
    """Fast-weight dropout: with probability p an example answers with one GDN layer's S (drawn
    uniformly) zeroed. Left alone, the depo models store every edge in one GDN layer (research/notebook.md),
    and a k-hop answer at wake needs reads from more than one."""
    B = S[0].shape[0]
    dropped = np.where(rng.random(B) < p, rng.integers(len(S), size=B), -1)
    return [s * torch.as_tensor(dropped != i, dtype=s.dtype, device=s.device).view(B, 1, 1, 1)
            for i, s in enumerate(S)]


def answer_logits(model: Model, batch: dict, S: list[torch.Tensor]) -> torch.Tensor:
    """Each question is asked on its own from the consolidated S: one ordinary pass."""
    S = [s.repeat_interleave(batch["per_example"], dim=0) for s in S]
    h, _ = model.window(model.embed(batch["q_tokens"]), S)
    last = h[torch.arange(h.shape[0]), batch["q_last"]]
    return model.logits(last)


@torch.no_grad()
def evaluate(model: Model, batches: list[dict], passes: list[int]) -> dict:
    """Accuracy per question kind and per number of passes on fixed held-out batches."""
    model.eval()
    out = {}
    for n in passes:
        right, total = {}, {}
        for batch in batches:
            pred = answer_logits(model, batch, consolidate(model, batch, n)).argmax(-1)
            for kind, ok in zip(batch["kinds"], (pred == batch["answers"]).tolist()):
                right[kind] = right.get(kind, 0) + ok
                total[kind] = total.get(kind, 0) + 1
        out[n] = {k: right[k] / total[k] for k in sorted(total)}
    model.train()
    return out


def save_checkpoint(path: Path, model: Model, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Model and optimizer tensors in one safetensors file, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.dim() > 0:
                    tensors[f"opt.{names[id(p)]}.{k}"] = v.cpu().contiguous()
    meta = {**meta, "opt_step": max((int(s["step"]) for s in opt.state.values()), default=0)}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: Model, opt: torch.optim.Optimizer | None = None) -> dict:
    from safetensors import safe_open

    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    if opt is not None:
        for n, p in model.named_parameters():
            state = {k: tensors[f"opt.{n}.{k}"].to(p.device) for k in ("exp_avg", "exp_avg_sq")
                     if f"opt.{n}.{k}" in tensors}
            if state:
                opt.state[p] = {**state, "step": torch.tensor(float(meta["opt_step"]))}
    return meta


def run_tokenizer(run_args: dict) -> Tokenizer:
    """The tokenizer a run trains with, from its arguments (args.json): its task's words, the
    training-only words its parameters add, and <w> if asked."""
    task = get_task(run_args["task"])
    params = {**task.DEFAULTS, **parse_params(run_args["param"])}
    return Tokenizer.from_words(vocabulary(task, params), bool(run_args.get("window_token")))


def load_weights(model: Model, state: dict, old: Tokenizer, new: Tokenizer) -> None:
    """Weights to warm-start from, their embedding rows moved by word from the `old` vocabulary to
    the `new` one: words the start did not have (<w>, rule110's cell words) get fresh rows."""
    emb = model.embed.weight.detach().cpu().clone()
    kept = {i: old.vocab[w] for w, i in new.vocab.items() if w in old.vocab}
    emb[list(kept)] = state["embed.weight"][list(kept.values())]
    model.load_state_dict({**state, "embed.weight": emb})
    if fresh := [i for i in new.words if i not in kept]:
        redraw_rows(model.embed.weight, fresh)


def warm_start(folder: Path, model: Model, tok: Tokenizer) -> int:
    """--init: the weights of a run folder (its checkpoint) or of a shipped model folder, for a
    model with tokenizer `tok`. Returns the step they were saved at."""
    if (folder / "ckpt.safetensors").exists():
        run_args = json.loads((folder / "args.json").read_text())
        start = Model(ModelArgs.from_dict(run_args["model"]))
        step = load_checkpoint(folder / "ckpt.safetensors", start)["step"]
        load_weights(model, start.state_dict(), run_tokenizer(run_args), tok)
        return step
    if (folder / "weights.safetensors").exists():
        load_weights(model, load_file(str(folder / "weights.safetensors")), Tokenizer.from_file(folder / "tokenizer.json"), tok)
        return json.loads((folder / "config.json").read_text())["train"]["steps"]
    raise SystemExit(f"--init {folder}: no ckpt.safetensors (a run) or weights.safetensors (a model) there")


@torch.no_grad()
def redraw_rows(weight: torch.Tensor, rows: list[int], near: list[int] | None = None) -> None:
    """Give `rows` random directions at the other rows' mean norm. Tied embeddings can collapse a
    whole answer class to one point, where the input side cannot tell its words apart and the
    output side gets no gradient to separate them; fresh rows break that symmetry.
    `near`: draw them instead around the centre of these rows, at their spread: a class the
    model already writes to S, so that the fresh rows start with its write gates open."""
    keep = torch.ones(weight.shape[0], dtype=torch.bool)
    keep[rows] = False
    fresh = F.normalize(torch.randn(len(rows), weight.shape[1], device=weight.device), dim=1)
    if near:
        centre = weight[near].mean(0)
        weight[rows] = centre + fresh * (weight[near] - centre).norm(dim=1).mean()
    else:
        weight[rows] = fresh * weight[keep].norm(dim=1).mean()


def common_args(ap: argparse.ArgumentParser, steps: int, eval_every: int, threads: int) -> None:
    """The arguments every trainer here shares (this one and benchmarks/train_baselines.py)."""
    ap.add_argument("--task", default="facts")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=eval_every)
    ap.add_argument("--param", action="append", default=[],
                    help="a task parameter for training data, e.g. people=2-8 or questions=20")
    ap.add_argument("--eval-examples", type=int, default=128)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--minutes", type=float, default=0, help="stop (with a checkpoint) after this long")
    ap.add_argument("--budget-minutes", type=float, default=0,
                    help="train for this much wall time: the cosine schedule follows the clock instead of "
                         "--steps (for a GPU lease; not bit-reproducible, the log records the steps reached)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def held_out(task, tok: Tokenizer, params: dict, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """The held-out batches of the training log: the evaluation ranges, but the training value
    of what defines the task (rule110's t, depo's Kmax)."""
    rng = np.random.default_rng(10_000 + args.seed)
    task_params = {k: params[k] for k in task.CONFIG_KEYS if k in params}
    sizes = [64] * (args.eval_examples // 64) + ([args.eval_examples % 64] if args.eval_examples % 64 else [])
    return [to_device(make_batch(task, tok, rng, n, args.window, task_params), device) for n in sizes]


def fit(model: Model, opt: torch.optim.Optimizer, args: argparse.Namespace, task, tok: Tokenizer, params: dict,
        loss_fn, eval_fn, step: int, elapsed: float, meta: dict) -> tuple[int, float, bool]:
    """The plain training loop: a cosine lr over --steps (or over the --budget-minutes clock),
    data from (seed, step) alone, a JSON-lines log with `eval_fn()` every --eval-every steps and
    at the end, a checkpoint every 100 steps. `loss_fn(batch, rng)` gives the loss of a batch.
    Returns (step, elapsed, finished); not finished when --minutes ran out first."""
    device = next(model.parameters()).device
    ckpt, log_path = args.out / "ckpt.safetensors", args.out / "log.jsonl"
    if log_path.exists():  # a run stopped after its last checkpoint logged steps that it now runs again
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        log_path.write_text("".join(line + "\n" for line in kept))
    t_start, budget = time.time() - elapsed, args.budget_minutes * 60

    def out_of_time() -> bool:  # --minutes, on the run's clock: a resumed run counts its earlier time
        return bool(args.minutes and time.time() - t_start > args.minutes * 60)

    if out_of_time():  # rerun after its --minutes: nothing left to do, not even one more step
        return step, elapsed, False
    with log_path.open("a") as log:
        while step < args.steps and (not budget or time.time() - t_start < budget):
            rng = np.random.default_rng([args.seed, step])  # data depends only on (seed, step): resumable
            progress = (time.time() - t_start) / budget if budget else step / args.steps
            lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            for g in opt.param_groups:
                g["lr"] = lr
            batch = to_device(make_batch(task, tok, rng, args.batch, args.window, batch_params(params, rng)), device)
            t0 = time.time()
            loss = loss_fn(batch, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
            opt.step()
            step += 1
            rec = {"step": step, "loss": round(loss.item(), 4), "lr": lr, "grad_norm": round(gnorm, 3),
                   "s_per_step": round(time.time() - t0, 3), "elapsed": round(time.time() - t_start, 1),
                   **{k: meta[k] for k in ("level", "ring_loss") if k in meta}}  # --climb's frontier, --ring-loss
            last = step == args.steps or bool(budget and time.time() - t_start >= budget)
            if step % args.eval_every == 0 or last:
                rec["eval"] = eval_fn()
                print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            stop = out_of_time()
            if step % 100 == 0 or last or stop:
                save_checkpoint(ckpt, model, opt, {"step": step, "elapsed": time.time() - t_start, "seed": args.seed,
                                                   "task": args.task, **meta})
            if stop:
                return step, time.time() - t_start, False
        return step, time.time() - t_start, True


def main(argv: list[str] | None = None, launcher: str = "python -m export.train") -> None:
    """`launcher`: how the run was started, before its arguments (a curriculum wrapper names
    itself), so that a model card's command reproduces it."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, steps=4000, eval_every=500, threads=2)
    ap.add_argument("--passes", default="1", help="N, or a range like 1-4 sampled per window")
    ap.add_argument("--init", type=Path, help="warm start: a run folder or a model folder whose weights to start from")
    ap.add_argument("--reinit-near", default="",
                    help="with --reinit-embed: comma-separated words around whose rows to draw the new ones")
    ap.add_argument("--reinit-embed", default="",
                    help="with --init: comma-separated words whose embedding rows to draw afresh, "
                         "e.g. the facts jobs, whose tied rows collapsed to one point")
    ap.add_argument("--rope-scale", default="1", help="RoPE position scale: a number or 'pi'")
    ap.add_argument("--window-token", action="store_true",
                    help="open every window with a <w> token, an anchor for absolute position")
    ap.add_argument("--drop-state", type=float, default=0.0,
                    help="fast-weight dropout: the share of examples that answer with one GDN layer's S zeroed")
    ap.add_argument("--steps-per-pass", type=int, default=0,
                    help="rule110 curriculum: each batch draws one N from --passes and asks about t = K*N, so "
                         "that every pass must add K steps; held-out keeps --param steps")
    ap.add_argument("--one-pass", action="store_true",
                    help="with --steps-per-pass: the same questions (t = K*m, m drawn from --passes) but one pass "
                         "per window. Ill-posed when several levels mix: nothing in the input then tells "
                         "which t a batch asks about; the fair baseline is N = 1 at the target t")
    ap.add_argument("--climb", type=float, default=0.0,
                    help="with --steps-per-pass: a level curriculum. Batches draw N from the frontier level F and "
                         "the one below it, F starting at the low end of --passes; F moves up one level when the "
                         "running mean of its batches' loss falls under this value")
    ap.add_argument("--ring-loss", type=float, default=0.0,
                    help="with --steps-per-pass: the weight of an auxiliary loss that reads the whole ring, K steps "
                         "further, from the features after every pass")
    args = ap.parse_args(argv)
    if args.reinit_embed and not args.init:
        ap.error("--reinit-embed redraws rows of a warm start: it needs --init")
    if args.steps_per_pass and args.task != "rule110":
        ap.error("--steps-per-pass ties rule110's t to N; the task is " + args.task)
    if args.one_pass and not args.steps_per_pass:
        ap.error("--one-pass is the control of the --steps-per-pass curriculum: it needs --steps-per-pass")
    if args.climb and not args.steps_per_pass:
        ap.error("--climb climbs the levels of the --steps-per-pass curriculum: it needs --steps-per-pass")
    if args.ring_loss and (not args.steps_per_pass or args.one_pass or args.window != rule110.CELLS
                           or args.window_token):
        ap.error(f"--ring-loss reads one string per window after each of its passes: it needs --steps-per-pass, "
                 f"--window {rule110.CELLS} and no --window-token or --one-pass")

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    params = {**task.DEFAULTS, **parse_params(args.param)}
    tok = run_tokenizer(vars(args))
    margs = ModelArgs(vocab_size=len(tok), d_model=args.d_model, window=args.window, window_token=tok.window_id,
                      rope_scale=math.pi if args.rope_scale == "pi" else float(args.rope_scale))
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "ckpt.safetensors"

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = Model(margs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    step, elapsed, init_step, resumed = 0, 0.0, None, {}
    if ckpt.exists():
        resumed = load_checkpoint(ckpt, model, opt)
        step, elapsed, init_step = resumed["step"], resumed["elapsed"], resumed.get("init_step")
        print(f"resuming {ckpt} at step {step}")
    elif args.init:
        init_step = warm_start(args.init, model, tok)
        print(f"warm start from {args.init} at step {init_step}")
        if args.reinit_embed:
            words, near = args.reinit_embed.split(","), [w for w in args.reinit_near.split(",") if w]
            if unknown := [w for w in words + near if w not in tok.vocab]:
                ap.error(f"--reinit-embed: not in the {args.task} vocabulary: {' '.join(unknown)}")
            redraw_rows(model.embed.weight, [tok.vocab[w] for w in words], [tok.vocab[w] for w in near])
    (args.out / "args.json").write_text(json.dumps(
        {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "model": asdict(margs),
         "argv": sys.argv[1:] if argv is None else argv,
         "command": " ".join([launcher, *(sys.argv[1:] if argv is None else argv)]),
         "init_step": init_step}, indent=1))

    lo, hi = parse_passes(args.passes)
    held = held_out(task, tok, params, args, device)
    train_task, train_params = task, params
    if args.steps_per_pass:  # N becomes a batch parameter, and t follows it
        train_task = SimpleNamespace(sample=lambda rng, passes, **rest: task.sample(
            rng, steps=args.steps_per_pass * passes[0], **rest))
        train_params = {**{k: v for k, v in params.items() if k != "steps"}, "passes": (lo, hi)}
    meta = {"passes": args.passes, "init_step": init_step}  # saved with every checkpoint

    def frontier(level: int, loss: float | None) -> None:
        """--climb: batches draw N from `level` and the one below; `loss` is the running mean of
        that level's batches so far. Both are saved with every checkpoint: a resumed run goes on."""
        meta.update(level=level, level_loss=loss)
        train_params["passes"] = (max(lo, level - 1), level)

    if args.climb:
        frontier(resumed.get("level", lo), resumed.get("level_loss"))

    def climb(n: int, loss: float) -> None:
        """A batch at the frontier updates the running mean of its loss; under the threshold, the
        frontier moves up."""
        if n != meta["level"]:
            return
        mean = loss if meta["level_loss"] is None else 0.9 * meta["level_loss"] + 0.1 * loss
        if mean < args.climb and n < hi:
            frontier(n + 1, None)
        else:
            frontier(n, mean)

    def loss_fn(batch: dict, rng: np.random.Generator) -> torch.Tensor:
        passes = (1 if args.one_pass else batch["params"]["passes"][0]) if args.steps_per_pass else None
        trace = {} if args.ring_loss else None
        S = consolidate(model, batch, passes or (lambda: int(rng.integers(lo, hi + 1))), trace)
        if args.drop_state:
            S = drop_state(S, args.drop_state, rng)
        loss = F.cross_entropy(answer_logits(model, batch, S), batch["answers"])
        if args.climb:
            climb(batch["params"]["passes"][0], loss.item())
        if args.ring_loss:
            ring = ring_loss(model, batch, trace, args.steps_per_pass, tok)
            meta["ring_loss"] = round(ring.item(), 4)
            return loss + args.ring_loss * ring
        return loss

    fit(model, opt, args, train_task, tok, train_params, loss_fn, lambda: evaluate(model, held, sorted({1, 2, 4, hi})),
        step, elapsed, meta)


if __name__ == "__main__":
    main()

"""Probes of where a model keeps what it reads (research/notebook.md, entries 11 and 12).

    .venv/bin/python -m research.probes layers models/depo-n1   # answer with one GDN layer's S zeroed
    .venv/bin/python -m research.probes order models/facts      # 2-hop accuracy by statement order
    .venv/bin/python -m research.probes guesses runs/depo-h2-n1 --nodes 5-10  # what depo's 2-hop answers are
    .venv/bin/python -m research.probes guesses runs/depo-h4-n3 --nodes 8-10 --hops 4  # and its 4-hop ones
    .venv/bin/python -m research.probes order runs/depo-h4-n3 --passes 1,3,4   # at the trained N = 3 too
    .venv/bin/python -m research.probes steps runs/r110-t8-tied   # rule110 at every t up to the model's
    .venv/bin/python -m research.probes steps RUN --t 3,6,9,12,15,18 --n-max 6   # and beyond it
    .venv/bin/python -m research.probes cells runs/r110-w-dense --t 2   # rule110 at every cell index
    .venv/bin/python -m research.probes ring runs/r110-k3climb2-s31 --t 0,3,6 --batches 8  # in the features
    .venv/bin/python -m research.probes head runs/r110-k2-ring --t 2 --n-max 4   # the ring the LM head reads
    .venv/bin/python -m research.probes fetch research/checkpoints/r110-k2r-5 --t 2 --n-max 7   # wrapped cells, by S

`layers`: accuracy per question kind when each GDN layer's fast weights are zeroed at question
time, the other layer's kept: which layer holds the context.
`order`: accuracy on two-hop questions (facts `where does NAME 's friend live ?`, depo h = 2)
split by whether the second fact is stated before the first (friend's city before the friendship,
`b c` before `a b`), so that pass 1 can read it while it writes the first, or after, so that only
a later pass can.

`guesses` (depo): where the h = 2 (or --hops) answers land on the cycle, by graph size M: right,
a, or their distance from a (+1 is succ(a), -1 the node before a). Ruling out a and the h - 1
nodes on the way alone is right 1/(M - h) of the time.

`steps` (rule110): accuracy per cell at every t from 1 to the model's (or at --t), for N = 1 to 4
(or --n-max), beside the majority class: do later passes compute later steps of the automaton
(notebook entry 14), and do passes past the trained ones go on (entry 17)?
`cells` (rule110, models trained with `--param cells=k`): accuracy at every cell index, asked as
`q<i> c<j>` (index 0 as `q<i>`), for N = 1 to --n-max: does the state hold the whole ring (entry 18)?
`ring` (rule110): after each pass over a string's window, can a linear readout of the features at
one position tell a cell's value at step t (and at which position)? Which cells' t = 3 values
does pass 1 leave for pass 2, and does pass 1 already hold the next level's answer (entry 20)?
`head` (rule110, models trained with `--ring-loss`, K steps per pass given as --t K): after pass N,
the LM head's reading of the features at position p, scored against cell p - K N at step K N, the
layout that loss trains. Does a pass past the trained ones carry the ring on (entry 24)?
`fetch` (rule110, as `head`): the positions below 2K, whose inputs wrap around to the window's
end, read with the S every pass wrote and with the S of the pass before alone (entry 29).

All run the training code's batches (export.train) on fresh examples (seeds 100..), N = 1, 2, 4
(or --passes; `steps`, `cells`, `ring`, `head` and `fetch`: 1 to --n-max).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import load_file

from edgesleep.cli import positive_ints
from edgesleep.config import Config
from edgesleep.tasks import Example, get_task, kind_order
from edgesleep.tokenizer import Tokenizer
from export.model import Model
from export.build import load_run, task_config
from export.train import answer_logits, consolidate, make_batch, parse_params, ring_target, run_tokenizer

PASSES = (1, 2, 4)
PARAMS = {"depo": {"hops": [1, 2]}}  # the kinds these probes are about; other tasks: their eval params


def load(folder: Path) -> tuple[Model, Tokenizer, Config]:
    """A model directory, or a training run's folder (its checkpoint)."""
    if (folder / "ckpt.safetensors").exists():
        model, run, _ = load_run(folder)
        config = Config(model.args, task_config(run["task"], run["param"]), [])
        return model.eval(), run_tokenizer(run), config
    config = Config.load(folder)
    model = Model(config.args)
    model.load_state_dict(load_file(str(folder / "weights.safetensors")))
    return model.eval(), Tokenizer.from_file(folder / "tokenizer.json"), config


def batches(config: Config, tok: Tokenizer, count: int, params: dict, size: int = 64):
    """(examples, batch) pairs: the batch built from exactly these examples."""
    task = get_task(config.task["name"])
    for seed in range(100, 100 + count):
        rng = np.random.default_rng(seed)
        examples = [task.sample(rng, **params) for _ in range(size)]
        it = iter(examples)
        yield examples, make_batch(SimpleNamespace(sample=lambda _rng, **_: next(it)), tok, rng, size,
                                   config.args.window, {})


def accuracy(model: Model, batch: dict, S: list[torch.Tensor]) -> list[bool]:
    return (answer_logits(model, batch, S).argmax(-1) == batch["answers"]).tolist()


def tally(rows: dict, row: tuple, oks: list[bool], columns: list[str | None]) -> None:
    """Count right answers into rows[row][column]; questions whose column is None are skipped."""
    for column, ok in zip(columns, oks):
        if column is not None:
            r = rows.setdefault(row, {}).setdefault(column, [0, 0])
            r[0] += ok
            r[1] += 1


def table(rows: dict, first: list[str]) -> str:
    """A markdown table: one line per row key, one column per answer kind (accuracy, count)."""
    columns = sorted({c for r in rows.values() for c in r}, key=kind_order)
    lines = ["| " + " | ".join(first + columns) + " |", "|" + "---|" * (len(first) + len(columns))]
    for key, r in rows.items():
        cells = [r[c] if isinstance(r.get(c), str) else f"{r[c][0] / r[c][1]:.3f} ({r[c][1]})" if c in r else ""
                 for c in columns]
        lines.append("| " + " | ".join([*map(str, key), *cells]) + " |")
    return "\n".join(lines)


def layers(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
           passes: tuple[int, ...] = PASSES) -> dict:
    rows = {}
    gdn = config.args.gdn_layers
    with torch.no_grad():
        for _, batch in batches(config, tok, count, params):
            for n in passes:
                S = consolidate(model, batch, n)
                for keep, name in [(set(gdn), "all")] + [({i}, f"only layer {i}") for i in gdn]:
                    kept = [s if i in keep else torch.zeros_like(s) for i, s in zip(gdn, S)]
                    tally(rows, (n, name), accuracy(model, batch, kept), batch["kinds"])
    return rows


def second_fact_first(example: Example, question: str) -> bool | None:
    """For a two-hop question: is the second fact stated before the first? None otherwise."""
    text, q = example.context, question.split()
    if q[0] == "k2":  # depo: `a b` is the first fact, `b c` the second
        src = text.split()[0::2]
        b = text.split()[1::2][src.index(q[1])]
        return src.index(b) < src.index(q[1])
    if question.endswith("'s friend live ?"):  # facts: the friendship, then the friend's latest city
        friendship = re.search(rf"\b{q[2]} is friends with (\w+) \.", text)
        city = max(m.start() for m in re.finditer(rf"\b{friendship.group(1)} (lives in|moved to) ", text))
        return city < friendship.start()
    return None


def order(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
          passes: tuple[int, ...] = PASSES) -> dict:
    rows = {}
    with torch.no_grad():
        for examples, batch in batches(config, tok, count, params):
            first = [second_fact_first(e, q.text) for e in examples for q in e.questions]
            labels = [None if f is None else ("second fact stated first" if f else "second fact stated after")
                      for f in first]
            for n in passes:
                tally(rows, (n,), accuracy(model, batch, consolidate(model, batch, n)), labels)
    return rows


def cycle_distances(context: str, a: str) -> dict[str, int]:
    """Every node of the depo cycle by how many edges on from a it lies (a itself at 0)."""
    words = context.split()
    succ, here, dist = dict(zip(words[0::2], words[1::2])), a, {}
    for d in range(len(succ)):
        dist[here] = d
        here = succ[here]
    return dist


def guesses(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
            passes: tuple[int, ...] = PASSES) -> dict:
    """depo, h = params["hops"][0], by graph size M: where on the cycle the answer lands, as its
    distance from a ("+h" is right, "-1" the node before a). A model that rules out a and the
    h - 1 nodes on the way is right 1/(M - h) of the time; above that, it composes."""
    h, rows = params["hops"][0], {}
    with torch.no_grad():
        for examples, batch in batches(config, tok, count, params):
            # per question, the cycle's distances from a, read once for every N
            asked = [cycle_distances(e.context, q.text.split()[1]) for e in examples for q in e.questions]
            for n in passes:
                guess = answer_logits(model, batch, consolidate(model, batch, n)).argmax(-1).tolist()
                for dist, g in zip(asked, guess):
                    m, d = len(dist), dist.get(tok.decode([g]))
                    label = "other" if d is None else "right" if d == h % m else "a" if d == 0 else \
                        f"+{d}" if d <= m // 2 else f"-{m - d}"
                    r = rows.setdefault((n, m, f"{1 / max(m - h, 1):.3f}"), {})
                    r[label] = r.get(label, 0) + 1
    return {k: {c: [v, sum(r.values())] for c, v in r.items()} for k, r in sorted(rows.items())}


def steps(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
          ts: list[int] | None = None, n_max: int = 4) -> dict:
    """rule110: accuracy for N = 1..n_max at each t of `ts` (every t up to params["steps"] by
    default), and the majority class."""
    rows = {("majority class",): {}}
    with torch.no_grad():
        for t in ts or range(1, params["steps"] + 1):
            ones = total = 0
            for _, batch in batches(config, tok, count, {"steps": t}):
                for n in range(1, n_max + 1):
                    tally(rows, (n,), accuracy(model, batch, consolidate(model, batch, n)), batch["kinds"])
                ones += int((batch["answers"] == tok.vocab["1"]).sum())
                total += len(batch["answers"])
            rows[("majority class",)][f"t={t}"] = [max(ones, total - ones), total]
    return rows


def cells(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
          ts: list[int] | None = None, n_max: int = 4) -> dict:
    """rule110: accuracy by cell index (a row per t and index) for N = 1..n_max (a column each)."""
    task = get_task("rule110")
    if not set(task.TRAINING_WORDS["cells"]) <= set(tok.vocab):
        raise ValueError("cells: this model's vocabulary has no cell words (c1-c23); train it with --param cells=k")
    rows = {}
    with torch.no_grad():
        for t in ts or [params["steps"]]:
            for examples, batch in batches(config, tok, count, {"steps": t, "cells": task.CELLS - 1}):
                index = [int(q.text.split()[1][1:]) if " " in q.text else 0 for e in examples for q in e.questions]
                for n in range(1, n_max + 1):
                    for j, ok in zip(index, accuracy(model, batch, consolidate(model, batch, n))):
                        tally(rows, (t, j), [ok], [f"N={n}"])
    return dict(sorted(rows.items()))


def ring(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
         ts: list[int] | None = None, n_max: int = 4) -> dict:
    """rule110: which cells' values at step t the features hold after each pass over a string's
    window. For every cell and position, a linear readout of the cell at step t from the features
    at that position after pass N (least squares, fit on the first half of the strings); the cell's
    score is its best position's accuracy (best on the fitting half, scored on the other half).
    Every window gets n_max passes. A row per (t, cell), a column per N ("accuracy @position")
    and the majority class."""
    rule = get_task("rule110")
    one = tok.vocab["1"]
    feats, strings = {n: [] for n in range(1, n_max + 1)}, []
    with torch.no_grad():
        for _, batch in batches(config, tok, count, {"steps": 0}):
            trace, tokens = {}, batch["tokens"]
            consolidate(model, batch, n_max, trace)
            for w, features in trace.items():
                digits = (tokens[0, w] == one) | (tokens[0, w] == tok.vocab["0"])  # <w> opens a window
                for n, h in enumerate(features, 1):
                    feats[n].append(h[:, digits].numpy())
                strings.append((tokens[:, w][:, digits] == one).numpy().astype(int))
    strings = np.concatenate(strings)  # (strings, cells)
    half = len(strings) // 2
    X = {n: np.concatenate(f) for n, f in feats.items()}  # (strings, positions, d)
    X = {n: np.concatenate([x, np.ones(x.shape[:2] + (1,))], -1) for n, x in X.items()}
    rows = {}
    for t in ts or range(params["steps"] + 1):
        target = rule.evolve(strings, t)
        for c, p1 in enumerate(target[half:].mean(0)):
            rows[(t, c)] = {"majority class": f"{max(p1, 1 - p1):.3f}"}
        for n, x in X.items():
            fit, score = [], []  # (positions, cells) each
            for pos in range(x.shape[1]):
                w = np.linalg.lstsq(x[:half, pos], target[:half] - 0.5, rcond=None)[0]
                fit.append(((x[:half, pos] @ w > 0) == target[:half]).mean(0))
                score.append(((x[half:, pos] @ w > 0) == target[half:]).mean(0))
            for c, pos in enumerate(np.argmax(fit, 0)):
                rows[(t, c)][f"N={n}"] = f"{score[pos][c]:.3f} @{pos}"
    return rows


def head(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
         ts: list[int] | None = None, n_max: int = 4) -> dict:
    """rule110: after pass N, the LM head's argmax at position p against cell p - K N at step K N
    (export.train's ring_loss layout), K = ts[0]. A row per block of four positions, a column per N."""
    if tok.window_id is not None:
        raise ValueError("head reads models trained with --ring-loss, which have no window token")
    (k,) = ts or [1]
    rows = {}
    with torch.no_grad():
        for _, batch in batches(config, tok, count, {"steps": 0}):
            trace = {}
            consolidate(model, batch, n_max, trace)
            for w, features in trace.items():
                for n, h in enumerate(features, 1):
                    target = ring_target(batch["tokens"][:, w], tok, k * n)
                    right = (model.logits(h).argmax(-1) == target).numpy()
                    for p in range(right.shape[1]):
                        tally(rows, (f"{p - p % 4}-{p - p % 4 + 3}",), right[:, p].tolist(), [f"N={n}"] * len(right))
    return rows


def fetch(model: Model, tok: Tokenizer, config: Config, count: int, params: dict,
          ts: list[int] | None = None, n_max: int = 4) -> dict:
    """rule110, `head`'s layout: how pass N computes positions 0 to 2K - 1, the cells whose inputs
    wrap around to the window's end, which only S holds. Read from the S every pass so far wrote
    (as the model runs), and from the S pass N - 1 alone wrote over the window's incoming S: if the
    second is better, older passes' writes get in the way. A row per N and per whether pass N - 1
    had all those positions right (what pass N inherits through the features). Every string gets
    n_max passes, so the S the later strings start from, and the figures, depend on n_max."""
    (k,) = ts or [1]
    zone = slice(0, 2 * k)
    rows = {}
    with torch.no_grad():
        for _, batch in batches(config, tok, count, {"steps": 0}):
            tokens, mask = batch["tokens"], batch["mask"]
            S = model.empty_state(tokens.shape[0])
            for w in range(tokens.shape[1]):
                S_in, hs = S, [model.embed(tokens[:, w])]  # the window's incoming S; each pass's input
                for _ in range(n_max):
                    h, S = model.window(hs[-1], S, mask[:, w])
                    hs.append(h)
                targets = [ring_target(tokens[:, w], tok, k * n)[:, zone] for n in range(n_max + 1)]
                right = [model.logits(h).argmax(-1)[:, zone] == target for h, target in zip(hs, targets)]
                for n in range(2, n_max + 1):
                    alone = model.window(hs[n - 2], S_in, mask[:, w])[1]
                    h_alone = model.window(hs[n - 1], alone, mask[:, w])[0]
                    right_alone = model.logits(h_alone).argmax(-1)[:, zone] == targets[n]
                    inherited = right[n - 1].all(1)
                    for column, oks_all in (("S of every pass", right[n]), ("S of pass N-1 alone", right_alone)):
                        for label, rows_of in (("right", inherited), ("wrong", ~inherited)):
                            oks = oks_all[rows_of].flatten().tolist()
                            tally(rows, (n, label), oks, [column] * len(oks))
    return dict(sorted(rows.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=["layers", "order", "guesses", "steps", "cells", "ring", "head", "fetch"])
    ap.add_argument("model", type=Path, help="a model directory, or a training run's folder")
    ap.add_argument("--batches", type=int, default=4, help="batches of 64 examples")
    ap.add_argument("--nodes", help="depo: the graph sizes M, e.g. 5-10 (default: the task's 8-24)")
    ap.add_argument("--hops", type=int, default=2, help="guesses: the h to ask about")
    ap.add_argument("--passes", type=positive_ints, default=list(PASSES),
                    help="layers, order, guesses: the N to compare, e.g. 1,3,4 (default: "
                         f"{','.join(map(str, PASSES))})")
    ap.add_argument("--t", help="steps, cells, ring: the t to ask about, e.g. 3,6,9,12,15 (default: steps 1 "
                                "to the model's, ring 0 to it, cells the model's); head, fetch: the steps per pass")
    ap.add_argument("--n-max", type=int, default=4, help="steps, cells, ring, head, fetch: passes from 1 to this")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, config = load(args.model)
    name = config.task["name"]
    fits = {"layers": ("facts", "depo", "rule110"), "order": ("facts", "depo"), "guesses": ("depo",),
            "steps": ("rule110",), "cells": ("rule110",), "ring": ("rule110",), "head": ("rule110",),
            "fetch": ("rule110",)}
    if name not in fits[args.probe]:
        ap.error(f"{args.probe}: not a probe for {name} (only {', '.join(fits[args.probe])})")
    params = dict(PARAMS.get(name) or get_task(name).eval_params(config.task))
    if args.nodes:
        params["nodes"] = parse_params([f"nodes={args.nodes}"])["nodes"]
    if args.probe == "guesses":
        params["hops"] = [args.hops]
    probe = {"layers": layers, "order": order, "guesses": guesses, "steps": steps, "cells": cells,
             "ring": ring, "head": head, "fetch": fetch}[args.probe]
    if args.probe in ("steps", "cells", "ring", "head", "fetch"):
        extra = {"ts": [int(t) for t in args.t.split(",")] if args.t else None, "n_max": args.n_max}
    else:
        extra = {"passes": tuple(args.passes)}
    rows = probe(model, tok, config, args.batches, params, **extra)
    what = {"guesses": f"share of h = {args.hops} answers (questions)",
            "ring": "linear readout of each cell from the features (accuracy @its best position)",
            "head": f"LM head at each position against cell p - {args.t} N at step {args.t} N (cells)",
            "fetch": f"LM head at positions p < 2K (K = {args.t}) after pass N, by the S it reads (cells)"}
    what = what.get(args.probe, "accuracy (questions)")
    print(f"{args.model}: {what}, {args.batches * 64} examples, seeds 100-{99 + args.batches}, {params}")
    first = {"layers": ["N", "fast weights kept"], "order": ["N"], "guesses": ["N", "M", f"1/(M-{args.hops})"],
             "steps": ["N"], "cells": ["t", "cell"], "ring": ["t", "cell"],
             "head": ["positions"], "fetch": ["N", "pass N-1 had them all"]}
    print(table(rows, first[args.probe]))


if __name__ == "__main__":
    main()

"""Held-out accuracy of every shipped model at the N its card was evaluated at (1, 2, 4, 8, and
rule110's 3 and 6): one table and one plot.

    .venv/bin/python -m benchmarks.accuracy              # from each model's metrics.json
    .venv/bin/python -m benchmarks.accuracy --evaluate   # re-evaluate through the API (~30 min)

Writes benchmarks/results/accuracy.md and accuracy.png: per task, accuracy against the sleep
depth N for each question kind, the sleep model against its N = 1 baseline (`-n1`), and the
accuracy baselines of benchmarks/baselines.md where they were measured on the same questions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgesleep.eval import evaluate, measured_passes
from edgesleep.models import resolve
from edgesleep.progress import Progress
from edgesleep.tasks import kind_order

RESULTS = Path(__file__).parent / "results"
TASKS = ("facts", "rule110", "depo")


def asks_the_same(baseline: dict, m: dict) -> bool:
    """Whether a baseline was measured on the question kinds a shipped model is asked: rule110's
    were measured at t = 4, before the shipped pair moved to t = 12."""
    return set(baseline["counts"]) == set(m["counts"])


def metrics(model: str, reevaluate: bool, examples: int) -> dict:
    folder = resolve(model)
    card = json.loads((folder / "metrics.json").read_text())
    if not reevaluate:
        return card
    passes = measured_passes(card)
    return evaluate(folder, passes, examples=examples, progress=Progress(f"eval {model}", examples * len(passes)))


def table(results: dict[str, dict], baselines: dict[str, dict]) -> str:
    columns = sorted({n for m in results.values() for n in measured_passes(m)})
    lines = ["| model | question | " + " | ".join(f"N = {n}" for n in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for model, m in results.items():
        for kind in sorted(m["counts"], key=kind_order):
            cells = (f"{m['accuracy'][str(n)][kind]:.3f}" if str(n) in m["accuracy"] else "" for n in columns)
            lines.append(f"| `{model}` | {kind} | " + " | ".join(cells) + " |")
    for task, b in baselines.items():
        for name, r in b["baselines"].items():
            for kind in sorted(r["accuracy"], key=kind_order):
                lines.append(f"| {task} baseline: {name} | {kind} | {r['accuracy'][kind]:.3f} (no sleep) |"
                             + " |" * (len(columns) - 1))
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], baselines: dict[str, dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(TASKS), figsize=(5 * len(TASKS), 5.5), sharey=True)
    for ax, task in zip(axes, TASKS):
        pair = {model: style for model, style in ((task, "-"), (f"{task}-n1", "--")) if model in results}
        ticks = sorted({n for model in pair for n in measured_passes(results[model])})
        for model, style in pair.items():
            m, ns = results[model], measured_passes(results[model])
            for i, kind in enumerate(sorted(m["counts"], key=kind_order)):
                ax.plot(ns, [m["accuracy"][str(n)][kind] for n in ns], style, marker="o",
                        color=f"C{i}", label=f"{model} {kind}")
        for j, (name, r) in enumerate(baselines.get(task, {}).get("baselines", {}).items()):
            for i, kind in enumerate(sorted(r["accuracy"], key=kind_order)):
                ax.axhline(r["accuracy"][kind], color=f"C{i}", linestyle=":", alpha=0.6,
                           label=f"{name} {kind}" if len(r["accuracy"]) > 1 or j == 0 else None)
        ax.set(title=task, xlabel="sleep passes N", xscale="log", xticks=ticks, xticklabels=ticks)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    axes[0].set_ylabel("held-out accuracy")
    fig.suptitle("solid: trained to sleep (N > 1); dashed: trained at N = 1 only; dotted: baselines without sleep")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="re-evaluate instead of reading metrics.json")
    ap.add_argument("--examples", type=int, default=200)
    args = ap.parse_args()
    results = {m: metrics(m, args.evaluate, args.examples) for t in TASKS for m in (t, f"{t}-n1")}
    baselines = {t: b for t in TASKS if (p := RESULTS / f"baselines-{t}.json").exists()
                 and asks_the_same(b := json.loads(p.read_text()), results[t])}
    RESULTS.mkdir(exist_ok=True)
    text = table(results, baselines)
    (RESULTS / "accuracy.md").write_text("# Held-out accuracy vs sleep depth\n\n"
                                         "Written by `python -m benchmarks.accuracy`.\n\n" + text)
    print(text)
    if not plot(results, baselines, RESULTS / "accuracy.png"):
        print("warning: matplotlib is not installed: no plot (pip install -e '.[dev]')")


if __name__ == "__main__":
    main()

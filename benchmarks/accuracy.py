"""Held-out accuracy of every shipped model at N = 1, 2, 4, 8: one table and one plot.

    .venv/bin/python -m benchmarks.accuracy              # from each model's metrics.json
    .venv/bin/python -m benchmarks.accuracy --evaluate   # re-evaluate through the API (~30 min)

Writes benchmarks/results/accuracy.md and accuracy.png: per task, accuracy against the sleep
depth N for each question kind, the anytime model against its N = 1 baseline (`-n1`), and the
accuracy baselines of benchmarks/baselines.md where they were measured.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgesleep.eval import evaluate
from edgesleep.models import resolve
from edgesleep.progress import Progress
from edgesleep.tasks import kind_order

RESULTS = Path(__file__).parent / "results"
TASKS = ("facts", "rule110", "depo")
PASSES = (1, 2, 4, 8)


def metrics(model: str, reevaluate: bool, examples: int) -> dict:
    folder = resolve(model)
    if not reevaluate:
        return json.loads((folder / "metrics.json").read_text())
    return evaluate(folder, list(PASSES), examples=examples,
                    progress=Progress(f"eval {model}", examples * len(PASSES)))


def table(results: dict[str, dict], baselines: dict[str, dict]) -> str:
    lines = ["| model | question | " + " | ".join(f"N = {n}" for n in PASSES) + " |",
             "|---|---|" + "---|" * len(PASSES)]
    for model, m in results.items():
        for kind in sorted(m["counts"], key=kind_order):
            lines.append(f"| `{model}` | {kind} | " + " | ".join(f"{m['accuracy'][str(n)][kind]:.3f}"
                                                          for n in PASSES) + " |")
    for task, b in baselines.items():
        for name, r in b["baselines"].items():
            for kind in sorted(r["accuracy"], key=kind_order):
                lines.append(f"| {task} baseline: {name} | {kind} | {r['accuracy'][kind]:.3f} (no sleep) |"
                             + " |" * (len(PASSES) - 1))
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
        for model, style in ((task, "-"), (f"{task}-n1", "--")):
            if model not in results:
                continue
            m = results[model]
            for i, kind in enumerate(sorted(m["counts"], key=kind_order)):
                ax.plot(PASSES, [m["accuracy"][str(n)][kind] for n in PASSES], style, marker="o",
                        color=f"C{i}", label=f"{model} {kind}")
        for j, (name, r) in enumerate(baselines.get(task, {}).get("baselines", {}).items()):
            for i, kind in enumerate(sorted(r["accuracy"], key=kind_order)):
                ax.axhline(r["accuracy"][kind], color=f"C{i}", linestyle=":", alpha=0.6,
                           label=f"{name} {kind}" if len(r["accuracy"]) > 1 or j == 0 else None)
        ax.set(title=task, xlabel="sleep passes N", xscale="log", xticks=PASSES, xticklabels=PASSES)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    axes[0].set_ylabel("held-out accuracy")
    fig.suptitle("solid: anytime model; dashed: trained at N = 1 only; dotted: baselines without sleep")
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
    baselines = {t: json.loads(p.read_text()) for t in TASKS
                 if (p := RESULTS / f"baselines-{t}.json").exists()}
    RESULTS.mkdir(exist_ok=True)
    text = table(results, baselines)
    (RESULTS / "accuracy.md").write_text("# Held-out accuracy vs sleep depth\n\n"
                                         "Written by `python -m benchmarks.accuracy`.\n\n" + text)
    print(text)
    if not plot(results, baselines, RESULTS / "accuracy.png"):
        print("warning: matplotlib is not installed: no plot (pip install -e '.[dev]')")


if __name__ == "__main__":
    main()

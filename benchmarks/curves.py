"""Held-out accuracy against wall time, read from training runs' logs: the equal-time comparisons
of the lab notebook (benchmarks/sleep-depth.md) as a picture.

    .venv/bin/python -m benchmarks.curves runs/depo-h4-n1 runs/depo-h4-n3 runs/depo-h4-n3:4 \\
        --kinds h=2,h=4 --out benchmarks/results/depo-h4-curves.png

Each RUN is drawn at the deepest N it trains with (`--passes 1-4` -> 4), or at the N named after a
colon (RUN:N); one panel per question kind. The points are the trainer's held-out evals.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from export.train import parse_passes  # noqa: E402


def curve(run: Path, n: int | None, kind: str) -> tuple[int, list[float], list[float]]:
    """(N, minutes, accuracy) of one run's held-out evals for one kind."""
    if n is None:
        n = parse_passes(json.loads((run / "args.json").read_text())["passes"])[1]
    evals = [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "eval" in r]
    points = [(r["elapsed"] / 60, r["eval"][str(n)][kind]) for r in evals if kind in r["eval"].get(str(n), {})]
    if not points:
        raise ValueError(f"{run}: no held-out {kind} at N = {n} in its log")
    return n, [m for m, _ in points], [a for _, a in points]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN or RUN:N")
    ap.add_argument("--kinds", required=True, help="comma-separated question kinds, e.g. h=2,h=4")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for spec in args.runs:
            path, _, n = spec.partition(":")
            n, minutes, acc = curve(Path(path), int(n) if n else None, kind)
            ax.plot(minutes, acc, label=f"{Path(path).name}, N = {n}", lw=1.2)
        ax.set(title=kind, xlabel="training wall time (min)", ylabel="held-out accuracy", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

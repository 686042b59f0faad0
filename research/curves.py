"""Held-out accuracy against wall time, read from training runs' logs: the equal-time comparisons
of the lab notebook (research/notebook.md) as a picture.

    .venv/bin/python -m research.curves runs/depo-h4-n1 runs/depo-h4-n3 runs/depo-h4-n3:4 \\
        --kinds h=2,h=4 --out benchmarks/results/depo-h4-curves.png

Each RUN is drawn at the deepest N it trains with (`--passes 1-4` -> 4), or at the N named after a
colon (RUN:N); one panel per question kind. The points are the trainer's held-out evals. A run
that warm-started from others can be drawn on its lineage's clock: RUN@MIN (or RUN:N@MIN) starts
its curve at minute MIN, the training time of the stages before it, so that lineages compare at
equal compute:

    .venv/bin/python -m research.curves runs/r110-t12-n1@167 research/checkpoints/r110-k2-ring6c:6@179 \
        --kinds t=12 --out benchmarks/results/rule110-t12-lineages.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from export.train import parse_passes  # noqa: E402


def parse_run(spec: str) -> tuple[Path, int | None, float]:
    """RUN[:N][@MIN] -> (RUN, N or None, MIN or 0)."""
    rest, _, start = spec.partition("@")
    path, _, n = rest.partition(":")
    return Path(path), int(n) if n else None, float(start) if start else 0.0


def curve(run: Path, n: int | None, kinds: list[str], start: float = 0.0
          ) -> tuple[int, dict[str, tuple[list[float], list[float]]]]:
    """(N, {kind: (minutes, accuracy)}) of one run's held-out evals, its minutes counted from `start`."""
    if n is None:
        n = parse_passes(json.loads((run / "args.json").read_text())["passes"])[1]
    evals = [(start + r["elapsed"] / 60, r["eval"].get(str(n), {}))
             for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "eval" in r]
    out = {}
    for kind in kinds:
        points = [(minutes, e[kind]) for minutes, e in evals if kind in e]
        if not points:
            raise ValueError(f"{run}: no held-out {kind} at N = {n} in its log")
        out[kind] = ([m for m, _ in points], [a for _, a in points])
    return n, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN, RUN:N, RUN@MIN or RUN:N@MIN")
    ap.add_argument("--kinds", required=True, help="comma-separated question kinds, e.g. h=2,h=4")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    runs = [(path, start, *curve(path, n, kinds, start)) for path, n, start in map(parse_run, args.runs)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for path, start, n, points in runs:
            label = f"{path.name}, N = {n}" + (f", from minute {start:g}" if start else "")
            ax.plot(*points[kind], label=label, lw=1.2)
        clock = "the lineage's" if any(start for _, start, *_ in runs) else ""
        ax.set(title=kind, xlabel=f"{clock} training wall time (min)".strip(), ylabel="held-out accuracy", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

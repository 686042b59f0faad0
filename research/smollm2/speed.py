"""Speed and memory of the numpy+onnx SmolLM2 against llama.cpp on the same GGUF, one thread each.

In one process, in rounds, each side in turn (the machine is shared, so only ratios measured
side by side mean much):
  decode  tokens/s of single-token calls with a growing past (a 64-token prompt, then 128 steps)
  feed    tokens/s of one call over a 256-token window (llama.cpp: one eval of the window)
and, each in a fresh subprocess, the resident memory after a feed and some decoding.
Our side is measured with the levers: MatMulNBits accuracy_level, graph optimisation level,
I/O binding, and with three untrained memory layers.

    python research/smollm2/speed.py [--rounds 3]
Writes research/smollm2/results/speed.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smol  # noqa: E402
from corpus import TEXT  # noqa: E402

PROMPT, STEPS, FEED, WINDOW = 64, 128, 256, 512
VARIANTS = {  # name: (accuracy_level, optimisation level, io binding, memory layers, cache, arena)
    "acc4": (4, "all", False, 0, "split", False),
    "acc4-shared": (4, "all", True, 0, "shared", False),
    "acc4-iobinding": (4, "all", True, 0, "split", False),
    "acc4-arena": (4, "all", False, 0, "split", True),
    "acc4-basic": (4, "basic", False, 0, "split", False),
    "acc4-noopt": (4, "disable", False, 0, "split", False),
    "acc0": (0, "all", False, 0, "split", False),
    "acc0-head4": (0, "all", False, 0, "split", False),
    "acc4-mem3": (4, "all", False, 3, "split", False),
    "acc4-shared-mem3": (4, "all", True, 3, "shared", False),
    "acc4-embedf32": (4, "all", False, 0, "split", False),
    "acc4-embedf16": (4, "all", False, 0, "split", False),
}


class Ours:
    def __init__(self, name):
        from edgesleep.llama.session import WakeSession  # not in the process measuring llama.cpp
        level, opt, io, memories, cache, arena = VARIANTS[name]
        head = 4 if name.endswith("head4") else None
        embedding = name.split("-embed")[1] if "-embed" in name else "codes"
        self.s = WakeSession(smol.graph(level, memories=memories, cache=cache, head_accuracy_level=head,
                                        embedding=embedding),
                             window=WINDOW, level=opt, io_binding=io, arena=arena)

    def feed(self, ids):
        self.s.reset()
        self.s.feed(ids)

    def decode(self, prompt, steps):
        self.s.reset()
        self.s.feed(prompt)
        for t in steps:
            self.s.feed([t])


class Llama:
    def __init__(self):
        self.llm = smol.llama(WINDOW)

    def feed(self, ids):
        self.llm.reset()
        self.llm.eval(ids)

    def decode(self, prompt, steps):
        self.llm.reset()
        self.llm.eval(prompt)
        for t in steps:
            self.llm.eval([t])


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def rss(side: str, variant: str, ids: list[int]) -> dict:
    """Resident memory of one side in a fresh process that imports only what that side needs:
    after loading, and after a feed and decoding (VmRSS), with the peak (VmHWM)."""
    base = smol.rss_mb()
    if side == "llama":
        import llama_cpp  # noqa: F401
    else:
        import edgesleep.llama.session  # noqa: F401  (and with it the edgesleep package)
    imported = smol.rss_mb()
    runner = Llama() if side == "llama" else Ours(variant)
    loaded = smol.rss_mb()
    runner.feed(ids[:FEED])
    runner.decode(ids[:PROMPT], ids[PROMPT:PROMPT + STEPS])
    run = smol.rss_mb()
    return {"python_baseline_mb": base, "after_import_mb": imported, "after_load_mb": loaded, "after_run_mb": run,
            "model_mb": run - imported, "peak_mb": smol.peak_rss_mb()}


def rss_subprocess(side: str, ids: list[int], variant: str = "acc4", repeats: int = 3) -> dict:
    """The run with the median after_run_mb of `repeats` fresh processes (what glibc keeps of
    freed buffers varies from run to run by some 20 MB), with every run's figure."""
    if side == "ours":
        Ours(variant)  # built before, not measured
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--rss", side, "--variant", variant, "--ids", json.dumps(ids)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["after_run_mb"])
    return {**runs[len(runs) // 2], "after_run_mb_all": [r["after_run_mb"] for r in runs]}


def measure_rss(ids: list[int], result: dict) -> None:
    some = ids[:FEED + PROMPT + STEPS]
    result["rss_mb"] = {"llama.cpp": rss_subprocess("llama", some),
                        **{v: rss_subprocess("ours", some, v) for v in ("acc4", "acc4-shared", "acc4-iobinding",
                                                                         "acc4-arena", "acc4-mem3", "acc4-embedf32",
                                                                         "acc4-embedf16")}}
    lc = result["rss_mb"]["llama.cpp"]
    result["rss_ratio"] = {v: {"process": r["after_run_mb"] / lc["after_run_mb"], "model": r["model_mb"] / lc["model_mb"]}
                           for v, r in result["rss_mb"].items() if v != "llama.cpp"}
    print("rss MB (process, after the imports):",
          {k: (round(v["after_run_mb"], 1), round(v["model_mb"], 1)) for k, v in result["rss_mb"].items()})
    print("rss ratio:", {k: {a: round(b, 2) for a, b in v.items()} for k, v in result["rss_ratio"].items()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rss", choices=["ours", "llama"])
    ap.add_argument("--variant", default="acc4")
    ap.add_argument("--ids", help="token ids (JSON) for --rss")
    ap.add_argument("--only-rss", action="store_true", help="measure memory only, into the existing results")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "speed.json"))
    args = ap.parse_args()
    if args.rss:
        print(json.dumps(rss(args.rss, args.variant, json.loads(args.ids))))
        return
    ids = smol.tokenizer().encode(TEXT)
    if args.only_rss:
        result = json.loads(Path(args.out).read_text())
        measure_rss(ids, result)
        Path(args.out).write_text(json.dumps(result, indent=1))
        return
    window, prompt, steps = ids[:FEED], ids[:PROMPT], ids[PROMPT:PROMPT + STEPS]
    names = args.variants.split(",")
    runners = {"llama.cpp": Llama(), **{n: Ours(n) for n in names}}
    for r in runners.values():  # warm up: first-call allocations, page faults
        r.feed(window[:32])
        r.decode(prompt[:8], steps[:4])
    feed = {n: [] for n in runners}
    decode = {n: [] for n in runners}
    for k in range(args.rounds):
        for n, r in runners.items():  # llama.cpp, then each of ours, then again
            feed[n].append(FEED / timed(r.feed, window))
            decode[n].append(STEPS / (timed(r.decode, prompt, steps) - timed(r.feed, prompt)))
        print(f"round {k + 1}: " + ", ".join(f"{n} decode {decode[n][-1]:.1f} feed {feed[n][-1]:.1f}"
                                             for n in runners), flush=True)
    best = lambda v: float(np.median(v))  # noqa: E731
    lc_decode, lc_feed = best(decode["llama.cpp"]), best(feed["llama.cpp"])
    result = {"threads": 1, "rounds": args.rounds, "prompt": PROMPT, "decode_steps": STEPS,
              "feed_tokens": FEED, "statistic": "median over rounds",
              "tokens_per_s": {n: {"decode": best(decode[n]), "feed": best(feed[n]),
                                   "decode_all": decode[n], "feed_all": feed[n]} for n in runners},
              "ratio_to_llama_cpp": {n: {"decode": best(decode[n]) / lc_decode, "feed": best(feed[n]) / lc_feed}
                                     for n in names}}
    del runners
    measure_rss(ids, result)
    for n in names:
        r = result["ratio_to_llama_cpp"][n]
        print(f"{n:12s} decode {best(decode[n]):6.1f} tok/s ({r['decode']:.2f}x)  feed {best(feed[n]):6.1f} tok/s ({r['feed']:.2f}x)")
    print(f"llama.cpp    decode {lc_decode:6.1f} tok/s          feed {lc_feed:6.1f} tok/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()

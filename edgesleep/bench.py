"""`edgesleep bench`: what this device does with a model, measured with the runtime alone.

Feed speed, the wake step, answer latency before and after a deep sleep at the model's depth,
the CPU cost of a sleep pass, and the process's memory. Each figure comes with the one it is
read against, timed in the same run. The full benchmark (a full-attention baseline, history up
to 64k tokens, footprint over 100k tokens, backend settings, plots) is `python -m benchmarks.bench`
in the repository; it builds on the measuring functions here.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgesleep.config import ModelArgs
from edgesleep.progress import Progress
from edgesleep.runtime import Runtime
from edgesleep.scheduler import energy_joules
from edgesleep.state import FastWeights, Window
from edgesleep.tasks import get_task


def rss_mb() -> float:
    """Resident set size now (Linux), else the peak so far (getrusage)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def cpu_name() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def clock() -> tuple[float, float, float | None]:
    """(wall s, CPU s of this process, RAPL joules or None)."""
    return time.perf_counter(), time.process_time(), energy_joules()


def since(start: tuple[float, float, float | None]) -> dict:
    wall, cpu, joules = clock()
    return {"wall_s": wall - start[0], "cpu_s": cpu - start[1],
            "joules": None if joules is None or start[2] is None else joules - start[2]}


NOTES = ["I parked the car on level 3 of the garage, next to the blue pillar.",
         "Ana's birthday is on the 14th of March; she likes dark chocolate and old maps.",
         "The dentist moved my appointment to Thursday at 10:30, room 204.",
         "Remember to water the basil every two days, and the fern once a week.",
         "The wifi password at the cabin is written under the kettle: maple-7731.",
         "Tom lent me his red bicycle until the end of June."]


def texts(task: str, seed: int = 0) -> Iterator[tuple[str, str]]:
    """(context, question) of the model's task, forever: realistic input for the tokenizer. A
    model without a task generator (a chat model) gets English notes in random order."""
    rng = np.random.default_rng(seed)
    try:
        module = get_task(task)
    except ValueError:
        while True:
            yield " ".join(rng.permutation(NOTES)), "Where did I park the car?"
    while True:
        ex = module.sample(rng)
        yield ex.context, ex.questions[0].text


def answer_ms_per_token(rt: Runtime, question: str) -> float:
    """One timed `answer` (a pure query, restores included), per question token."""
    t = time.perf_counter()
    rt.answer(question)
    return (time.perf_counter() - t) * 1e3 / len(rt.tokenizer.encode(question))


def wake_ms(backend, args: ModelArgs, steps: int, repeats: int = 3) -> tuple[float, float]:
    """(wall ms, CPU ms) per wake step through the runtime's step path, from the best of
    `repeats` runs (the machine is shared: the best run is the least disturbed one)."""
    tokens = np.random.default_rng(0).integers(2, args.vocab_size, steps).tolist()
    best = (np.inf, np.inf)
    for _ in range(repeats):
        window, fast = Window.empty(args), FastWeights.zeros(args)
        wall, cpu = time.perf_counter(), time.process_time()
        for token in tokens:
            if window.full:
                window = Window.empty(args)
            backend.step(token, window, fast)
        best = min(best, ((time.perf_counter() - wall) * 1e3 / steps, (time.process_time() - cpu) * 1e3 / steps))
    return best


def device_report(model: str | Path = "facts", tokens: int = 2048, rounds: int = 10) -> dict:
    """Feed `tokens` tokens of the model's task into an ephemeral memory, answer, deep-sleep at
    the model's depth, answer again; answers are timed alternately with a copy of the memory
    left light, so that noise falls on both."""
    start_rss = rss_mb()
    with Runtime(model) as rt, Runtime(model) as light:
        task, n = rt.config.task["name"], max(rt.passes, 2)  # a model trained at N = 1 only: its cost at N = 2
        source, fed, feed_s = texts(task), 0, 0.0
        bar = Progress("bench: feed", tokens)
        question = None
        while fed < tokens:
            context, question = next(source)
            t = time.perf_counter()
            fed += rt.feed(context)
            feed_s += time.perf_counter() - t
            light.feed(context)
            bar(min(fed, tokens))
        step_ms, step_cpu_ms = wake_ms(rt.backend, rt.config.args, 256)
        start = clock()
        cost = rt.sleep(n, progress=Progress(f"bench: deep sleep, N={n}", 1))
        slept = since(start)
        times: dict[str, list[float]] = {"light": [], "deep": []}
        for _ in range(rounds + 1):
            times["light"].append(answer_ms_per_token(light, question))
            times["deep"].append(answer_ms_per_token(rt, question))
        answer = {k: statistics.median(v[1:]) for k, v in times.items()}  # round 0 warms up
        decode = None
        if rt.chat_template:  # a chat model: tokens/s of a reply, a graph call per token
            t, pieces = time.perf_counter(), 0
            for _ in light.generate(" ", max_tokens=64):
                pieces += 1
            decode = {"tokens": 64, "tokens_per_s": 64 / (time.perf_counter() - t)}
        return {
            "model": str(rt.model_dir), "backend": rt.backend.name, "processor": cpu_name(), "cpus": os.cpu_count(),
            "feed": {"tokens": fed, "tokens_per_s": fed / feed_s, "wake_step_ms": step_ms,
                     "wake_step_cpu_ms": step_cpu_ms},
            "sleep": {"passes": n, "tokens": cost.tokens, **slept,
                      "cpu_us_per_token_per_pass": slept["cpu_s"] / (cost.tokens * n) * 1e6,
                      "vs_wake_step": slept["cpu_s"] / (cost.tokens * n) * 1e3 / step_cpu_ms},
            "answer_ms_per_token": {"light (N=1)": answer["light"], f"deep (N={n})": answer["deep"],
                                    "ratio": answer["deep"] / answer["light"]},
            "rss_mb": {"at_start": start_rss, "two_runtimes_open": rss_mb()},
            "decode": decode,
        }


def report_lines(r: dict) -> list[str]:
    f, s, a = r["feed"], r["sleep"], r["answer_ms_per_token"]
    light, deep = (k for k in a if k != "ratio")
    joules = "" if s["joules"] is None else f", {s['joules']:.2f} J"
    return [f"edgesleep bench: {r['model']} on {r['processor']} ({r['cpus']} CPUs), backend {r['backend']}, 1 thread",
            f"  feed         {f['tokens_per_s']:.0f} tokens/s over {f['tokens']} tokens (journal, fsync-free, light "
            f"sleeps included); wake step {f['wake_step_ms']:.3f} ms",
            f"  deep sleep   N={s['passes']} over {s['tokens']} tokens: {s['wall_s']:.2f} s, {s['cpu_s']:.2f} CPU s{joules}; "
            f"{s['cpu_us_per_token_per_pass']:.0f} CPU us per token per pass ({s['vs_wake_step']:.2f}x a wake step)",
            f"  answer       {a[light]:.3f} ms/token {light}, {a[deep]:.3f} {deep}: ratio {a['ratio']:.2f} "
            f"(sleep depth costs the answer nothing)",
            *([f"  decode       {r['decode']['tokens_per_s']:.1f} tokens/s over {r['decode']['tokens']} tokens"]
              if r.get("decode") else []),
            f"  memory       RSS {r['rss_mb']['two_runtimes_open']:.0f} MB with two runtimes open",
            "  the full benchmark, against baselines and with plots: python -m benchmarks.bench (in the repository)"]

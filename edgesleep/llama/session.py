"""Running the wake/feed graph: one window's attention cache and the memory layers' states, in
numpy, around an onnxruntime session.

    s = WakeSession("out/smollm2/model.onnx", window=256)
    logits = s.feed(prompt_ids)         # a whole prompt in one call
    logits = s.feed([next_id])          # then a token at a time
    s.reset()                           # a new window: empty cache, zero conv state; S is kept

The cache is one preallocated array per k and v: (layers, L, kv_heads, head_dim) for a graph
built with cache="split", whose past is bound as the view [:P] and whose new rows are written
straight into [P:P+T]; (layers, kv_heads, L, head_dim) for cache="shared", bound once as both
input and output, which the graph appends to in place.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

LEVELS = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path: str | Path, threads: int = 1, level: str = "all", arena: bool = False) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    # No arena and no memory pattern by default: SmolLM2 kept 10 MB less resident after a
    # 256-token feed, at no measurable cost in speed (research/smollm2/speed.py)
    opts.enable_cpu_mem_arena = arena
    opts.enable_mem_pattern = arena
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class WakeSession:
    def __init__(self, path: str | Path, window: int = 256, threads: int = 1, level: str = "all",
                 io_binding: bool | None = None, arena: bool = False):
        """`io_binding`: bind the split cache's views per call instead of passing them to run().
        Off by default: binding 60 inputs and outputs anew per token costs about what it saves
        (SmolLM2 decode over four runs: no difference beyond the noise). A shared cache is
        always bound, once; it is the faster layout (about 1.2x llama.cpp's decode vs 0.9x)."""
        self.sess = session(path, threads, level, arena)
        ins = {i.name: i for i in self.sess.get_inputs()}
        self.shared = "cache_k.0" in ins
        self.layers = sum(1 for n in ins if n.startswith(("past_k.", "cache_k.")))
        nkv, hd = (ins["cache_k.0"].shape[1], ins["cache_k.0"].shape[3]) if self.shared else ins["past_k.0"].shape[1:]
        self.window = window
        self.k = np.zeros((self.layers, nkv, window, hd) if self.shared else (self.layers, window, nkv, hd), np.float32)
        self.v = np.zeros_like(self.k)
        self.memories = sum(1 for n in ins if n.startswith("S."))
        self.S = [np.zeros(ins[f"S.{m}"].shape, np.float32) for m in range(self.memories)]
        self.conv = [np.zeros(ins[f"conv.{m}"].shape, np.float32) for m in range(self.memories)]
        out = self.sess.get_outputs()[0]
        self.all_logits = len(out.shape) == 2
        self.vocab = out.shape[-1]
        self.io_binding = bool(io_binding) or self.shared
        # a graph built with features: rows of features may follow the tokens, and the residual
        # stream before the final norm comes back as `h_out` (a sleep pass's next input)
        self.features = "h" in ins
        self._no_h = np.zeros((0, ins["h"].shape[1]) if self.features else (0, 0), np.float32)
        self.h_out: np.ndarray | None = None
        self.P = 0
        self._pos = np.zeros(1, np.int64)
        self._logits = np.zeros(self.vocab, np.float32)
        if self.shared:
            self._io = self._bind_cache()

    def _bind_cache(self):
        """The binding of a shared-cache graph: everything but tokens and states, once."""
        io = self.sess.io_binding()
        io.bind_cpu_input("pos", self._pos)
        if not self.all_logits:
            io.bind_output("logits", "cpu", 0, np.float32, self._logits.shape, self._logits.ctypes.data)
        for i in range(self.layers):
            for name, buf in (("k", self.k), ("v", self.v)):
                view = buf[i][None]
                io.bind_cpu_input(f"cache_{name}.{i}", view)
                io.bind_output(f"present_{name}.{i}", "cpu", 0, np.float32, view.shape, view.ctypes.data)
        return io

    def reset(self, states: bool = False) -> None:
        """A new window. `states`: also zero the fast weights S."""
        self.P = 0
        for c in self.conv:
            c[:] = 0
        if states:
            for S in self.S:
                S[:] = 0

    def feed(self, tokens, h: np.ndarray | None = None) -> np.ndarray:
        """Run `tokens` (then rows of features `h`, with a graph built with features) at the next
        positions of the window; returns the logits (vocab,) of the last one, or (T, vocab) for
        a graph built with all_logits. `h_out` then holds the features of every row."""
        tokens = np.asarray(tokens, np.int64).reshape(-1)
        if h is not None and not self.features:
            raise ValueError("this graph was built without a features input")
        self._h = self._no_h if h is None else np.ascontiguousarray(h, np.float32)
        T, P = len(tokens) + len(self._h), self.P
        if P + T > self.window:
            raise ValueError(f"{T} tokens do not fit the window ({P} of {self.window} used)")
        self._pos[0] = P
        if self.shared:
            logits = self._run_shared(tokens, T)
        elif self.io_binding:
            logits = self._run_bound(tokens, T, P)
        else:
            logits = self._run(tokens, T, P)
        self.P = P + T
        return logits

    def _run(self, tokens: np.ndarray, T: int, P: int) -> np.ndarray:
        feeds = {"tokens": tokens, "pos": self._pos}
        if self.features:
            feeds["h"] = self._h
        for i in range(self.layers):
            feeds[f"past_k.{i}"], feeds[f"past_v.{i}"] = self.k[i, :P], self.v[i, :P]
        for m in range(self.memories):
            feeds[f"S.{m}"], feeds[f"conv.{m}"] = self.S[m], self.conv[m]
        outs = self.sess.run(None, feeds)
        names = [o.name for o in self.sess.get_outputs()]
        for name, value in zip(names[1:], outs[1:]):
            if name == "h_out":
                self.h_out = value
                continue
            kind, idx = name.split(".")
            idx = int(idx)
            if kind == "new_k":
                self.k[idx, P:P + T] = value
            elif kind == "new_v":
                self.v[idx, P:P + T] = value
            elif kind == "new_S":
                self.S[idx] = value
            else:
                self.conv[idx] = value
        return outs[0]

    def _bind_states(self, io, T: int) -> list:
        """S and conv are read and written by one call: the outputs go to fresh arrays. So do
        the features, where the graph has them."""
        if self.features:
            self.h_out = np.empty((T, self._no_h.shape[1]), np.float32)
            io.bind_cpu_input("h", self._h)
            io.bind_output("h_out", "cpu", 0, np.float32, self.h_out.shape, self.h_out.ctypes.data)
        new_states = []
        for m in range(self.memories):
            S, conv = np.empty_like(self.S[m]), np.empty_like(self.conv[m])
            io.bind_cpu_input(f"S.{m}", self.S[m])
            io.bind_cpu_input(f"conv.{m}", self.conv[m])
            io.bind_output(f"new_S.{m}", "cpu", 0, np.float32, S.shape, S.ctypes.data)
            io.bind_output(f"new_conv.{m}", "cpu", 0, np.float32, conv.shape, conv.ctypes.data)
            new_states.append((S, conv))
        return new_states

    def _run_shared(self, tokens: np.ndarray, T: int) -> np.ndarray:
        io = self._io
        io.bind_cpu_input("tokens", tokens)
        if self.all_logits:
            logits = np.empty((T, self.vocab), np.float32)
            io.bind_output("logits", "cpu", 0, np.float32, logits.shape, logits.ctypes.data)
        new_states = self._bind_states(io, T)
        self.sess.run_with_iobinding(io)
        for m, (S, conv) in enumerate(new_states):
            self.S[m], self.conv[m] = S, conv
        return logits if self.all_logits else self._logits.copy()

    def _run_bound(self, tokens: np.ndarray, T: int, P: int) -> np.ndarray:
        io = self.sess.io_binding()
        io.bind_cpu_input("tokens", tokens)
        io.bind_cpu_input("pos", self._pos)
        logits = np.empty((T, self.vocab) if self.all_logits else (self.vocab,), np.float32)
        io.bind_output("logits", "cpu", 0, np.float32, logits.shape, logits.ctypes.data)
        for i in range(self.layers):
            for name, buf in (("k", self.k), ("v", self.v)):
                io.bind_cpu_input(f"past_{name}.{i}", buf[i, :P])
                new = buf[i, P:P + T]
                io.bind_output(f"new_{name}.{i}", "cpu", 0, np.float32, new.shape, new.ctypes.data)
        new_states = self._bind_states(io, T)
        self.sess.run_with_iobinding(io)
        for m, (S, conv) in enumerate(new_states):
            self.S[m], self.conv[m] = S, conv
        return logits

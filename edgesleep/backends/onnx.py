"""onnxruntime backend: the wake step (model.onnx) and the sleep pass (sleep.onnx) that
export/to_onnx.py writes."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgesleep.backends import feed_by_steps
from edgesleep.config import Config
from edgesleep.state import FastWeights, Window


def _session(path: Path, threads: int | None, mem_pattern: bool = True) -> ort.InferenceSession:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = mem_pattern
    # One thread by default: at this size, threading costs more than it saves (bench: 0.551 vs
    # 0.590 ms per wake step with 1 and 2 threads).
    opts.intra_op_num_threads = threads or 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a bad file
        raise ValueError(f"{path} is not a valid ONNX graph: {str(e).splitlines()[0]}") from None


EMBED = "m.embed.weight"  # export/to_onnx.py: WakeStep.m is the model
WEIGHTS_DATA = "graphs.data"  # the external weights both graphs share (export/to_onnx.py)


def _embeddings(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The token embedding table of the ONNX wake graph."""
    import onnx  # here, not at import: only a deep sleep needs it, and it costs resident memory
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_tensor

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing")
    # Only this tensor's bytes are read: loading every weight of the graph to keep one table
    # cost 3.5 MB of RSS for the rest of the process (bench, footprint from a cold start).
    for t in onnx.load(str(path), load_external_data=False).graph.initializer:
        if t.name == EMBED and tuple(t.dims) == shape:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                load_external_data_for_tensor(t, str(path.parent))
            return numpy_helper.to_array(t).astype(np.float32)
    raise ValueError(f"{path} has no {EMBED} of shape {shape}; re-export the model")


class OnnxSleep:
    """The sleep pass (sleep.onnx). Every backend sleeps through it: the fast weights are the
    common currency, so a memory consolidated under one backend is used as is by another."""

    def __init__(self, model_dir: Path, config: Config, threads: int | None = None):
        self.args = config.args
        # No memory pattern for the sleep graph: planning one block for all its intermediates
        # cost 3.3 MB of RSS at the first deep sleep (graph of 1112 nodes), for no measurable speed.
        self.sleep = _session(model_dir / "sleep.onnx", threads, mem_pattern=False)
        self._wake_graph = model_dir / "model.onnx"

    @cached_property
    def _embed(self) -> np.ndarray:
        """Read on the first deep sleep, not at open: answering and feeding never need it."""
        return _embeddings(self._wake_graph, (self.args.vocab_size, self.args.d_model))

    def embed(self, tokens: list[int]) -> np.ndarray:
        """The input of sleep pass 1 for a window of `tokens`: their embeddings, zero-padded to L."""
        h = np.zeros((self.args.window, self.args.d_model), np.float32)
        h[:len(tokens)] = self._embed[tokens]
        return h

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        """One sleep pass over a window's features from `fast`; returns (features, S)."""
        names = ["h.new", *[f"{n}.new" for n in fast.state]]
        h, *S = self.sleep.run(names, {"h": features, "mask": mask, **fast.state})
        return h, FastWeights(dict(zip(fast.S, S)))


class OnnxBackend:
    """backend="onnx": wake steps on the wake graph, sleep passes on the sleep graph."""

    name = "onnx"

    def __init__(self, model_dir: Path, config: Config, threads: int | None = None,
                 wake: ort.InferenceSession | None = None):
        """`wake`: a wake session made with other settings than the default's (the benchmark
        compares them); it must be a session of this model's model.onnx."""
        self.args = config.args
        self._sleep = OnnxSleep(model_dir, config, threads)
        self._token = np.zeros(1, np.int64)
        self._pos = np.zeros(1, np.int64)
        self._logits = np.zeros(self.args.vocab_size, np.float32)
        self._bind_wake(wake or _session(model_dir / "model.onnx", threads))

    def embed(self, tokens: list[int]) -> np.ndarray:
        return self._sleep.embed(tokens)

    def feed(self, tokens: list[int], window: Window, fast: FastWeights) -> np.ndarray:
        return feed_by_steps(self, tokens, window, fast)  # the wake graph takes one token a call

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        return self._sleep.sleep_pass(features, mask, fast)

    def close(self) -> None:
        """onnxruntime sessions free themselves."""

    def _bind_wake(self, session: ort.InferenceSession) -> None:
        """The wake session, bound once: the states ping-pong between two buffer sets through
        two I/O bindings (set 0 -> set 1 and back), so a step binds no array and onnxruntime
        allocates no state (faster than run() with numpy feeds: the benchmark's backends section)."""
        self._wake = session
        states = [i for i in session.get_inputs() if i.name not in ("token", "pos")]
        self._sets = [{i.name: np.zeros(i.shape, np.float32) for i in states} for _ in range(2)]
        self._bindings = [self._bind(self._sets[a], self._sets[1 - a]) for a in (0, 1)]
        self._cur = 0

    def _bind(self, src: dict[str, np.ndarray], dst: dict[str, np.ndarray]):
        io = self._wake.io_binding()
        io.bind_cpu_input("token", self._token)
        io.bind_cpu_input("pos", self._pos)
        for name, buf in [*src.items(), ("logits", self._logits)]:
            if name != "logits":
                io.bind_cpu_input(name, buf)
                name, buf = name + ".new", dst[name]
            io.bind_output(name, "cpu", 0, np.float32, buf.shape, buf.ctypes.data)
        return io

    def step(self, token: int, window: Window, fast: FastWeights) -> np.ndarray:
        """One wake step: runs `token` at the next slot of `window`, updating the window and
        `fast` in place. Returns the logits.

        The arrays it leaves in `window` and `fast` are this backend's buffers, valid only until
        its next step (of any window): whoever keeps state beyond that copies it (Window.copy,
        Memory)."""
        self._token[0], self._pos[0] = token, window.pos
        src, dst = self._sets[self._cur], self._sets[1 - self._cur]
        live = {f"S.{i}": s for i, s in fast.S.items()} | {f"conv.{i}": c for i, c in window.conv.items()}
        for i, (k, v) in window.kv.items():
            live[f"k.{i}"], live[f"v.{i}"] = k, v
        for name, a in live.items():
            if a is not src[name]:  # a fresh window, or fast weights restored or consolidated
                np.copyto(src[name], a)
        self._wake.run_with_iobinding(self._bindings[self._cur])
        self._cur = 1 - self._cur
        for i in window.kv:
            window.kv[i] = (dst[f"k.{i}"], dst[f"v.{i}"])
        for i in fast.S:
            fast.S[i], window.conv[i] = dst[f"S.{i}"], dst[f"conv.{i}"]
        window.tokens.append(token)
        return self._logits.copy()

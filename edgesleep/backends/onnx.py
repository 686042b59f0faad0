"""onnxruntime backend: the wake step and the sleep pass of export/to_onnx.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgesleep.config import Config
from edgesleep.state import FastWeights, Window


class OnnxBackend:
    name = "onnx"

    def __init__(self, model_dir: Path, config: Config, threads: int | None = None):
        self.args = config.args
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One thread by default: at this size, threading costs more than it saves (bench: 2.7 vs
        # 4.6 ms per wake step with 1 and 2 threads).
        opts.intra_op_num_threads = threads or 1
        opts.inter_op_num_threads = 1
        self.wake = self._session(model_dir / "model.onnx", opts)
        self.sleep = self._session(model_dir / "sleep.onnx", opts)
        self._wake_outputs = [o.name for o in self.wake.get_outputs()]
        self._token = np.zeros(1, np.int64)
        self._pos = np.zeros(1, np.int64)

    @staticmethod
    def _session(path: Path, opts: ort.SessionOptions) -> ort.InferenceSession:
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing")
        try:
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a bad file
            raise ValueError(f"{path} is not a valid ONNX graph: {str(e).splitlines()[0]}") from None

    def step(self, token: int, window: Window, fast: FastWeights) -> np.ndarray:
        """One wake step: runs `token` at the next slot of `window`, updating the window and
        `fast` in place. Returns the logits."""
        pos = window.pos
        self._token[0], self._pos[0] = token, pos
        feeds = {"token": self._token, "pos": self._pos}
        for i, (k, v) in window.kv.items():
            feeds[f"k.{i}"], feeds[f"v.{i}"] = k, v
        for i, s in fast.S.items():
            feeds[f"S.{i}"], feeds[f"conv.{i}"] = s, window.conv[i]
        out = dict(zip(self._wake_outputs, self.wake.run(self._wake_outputs, feeds)))
        for i in window.kv:
            window.kv[i] = (out[f"k.{i}.new"], out[f"v.{i}.new"])
        for i in fast.S:
            fast.S[i], window.conv[i] = out[f"S.{i}.new"], out[f"conv.{i}.new"]
        window.features[pos] = out["h"]
        window.tokens.append(token)
        return out["logits"]

    def sleep_pass(self, features: np.ndarray, mask: np.ndarray, fast: FastWeights) -> tuple[np.ndarray, FastWeights]:
        """One sleep pass over a window's features from `fast`; returns (features, S)."""
        feeds = {"h": features, "mask": mask, **{f"S.{i}": s for i, s in fast.S.items()}}
        names = ["h.new", *[f"S.{i}.new" for i in fast.S]]
        h, *S = self.sleep.run(names, feeds)
        return h, FastWeights(dict(zip(fast.S, S)))

"""The gated delta rule in NumPy: the reference semantics of a fast-weight write and read.

It is what llama.cpp's qwen35 CPU kernel computes per token and head, and what the torch
model's chunkwise training form and the ONNX sleep graph must agree with (tests/test_delta_rule.py).
"""
from __future__ import annotations

import numpy as np


def delta_rule(S: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, beta: np.ndarray,
               g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the recurrence over T tokens for H heads.

    S (H, dv, dk); q, k (T, H, dk), L2-normalised; v (T, H, dv); beta, g (T, H), g = log alpha.
    Per token: S <- exp(g) S; S <- S + beta (v - S k) k^T; o = S q / sqrt(dk).
    Returns (o (T, H, dv), S).
    """
    S = S.astype(np.float32, copy=True)
    out = np.empty(v.shape, np.float32)
    scale = 1.0 / np.sqrt(k.shape[-1])
    for t in range(k.shape[0]):
        S *= np.exp(g[t])[:, None, None]
        d = beta[t][:, None] * (v[t] - np.einsum("hvk,hk->hv", S, k[t]))
        S += d[:, :, None] * k[t][:, None, :]
        out[t] = np.einsum("hvk,hk->hv", S, q[t]) * scale
    return out, S

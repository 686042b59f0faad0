"""Sleep: consolidation of one window into the fast weights, a function of (window, S) -> S.

A light sleep (N = 1) costs nothing: the wake steps already left S^1, the ordinary hybrid's
state, which the runtime keeps at each eviction. A deep sleep runs N passes over the window on
the sleep graph: pass 1 from the token embeddings (the same S^1 as the wake steps, without a
graph call per token), each further pass from the previous pass's features, with S carried
over, an empty attention cache and a zero conv state. Only S survives the window.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgesleep.state import FastWeights


@dataclass(frozen=True)
class SleepCost:
    """What one deep sleep cost: tokens consolidated, passes, CPU and wall seconds."""

    tokens: int
    passes: int
    cpu_s: float
    wall_s: float


def sleep(backend, tokens: list[int], fast: FastWeights, passes: int) -> FastWeights:
    """Consolidate one window's fed `tokens` (at most ModelArgs.window_text) into `fast`, the
    state before it, with `passes` passes."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    L, opener = backend.args.window, backend.args.window_token
    tokens = tokens if opener is None else [opener, *tokens]
    h, mask = backend.embed(tokens), (np.arange(L) < len(tokens)).astype(np.float32)
    for _ in range(passes):
        h, fast = backend.sleep_pass(h, mask, fast)
    return fast


def replay(backend, tokens: list[int], fast: FastWeights, passes: int,
           progress: Callable[[int, int], None] | None = None,
           should_stop: Callable[[], bool] | None = None, start: int = 0,
           checkpoint: Callable[[int, FastWeights], None] | None = None) -> tuple[FastWeights, int]:
    """Deep sleep over a stretch of the journal: the same windows as at wake, each consolidated
    with `passes` passes, from the deep state `fast`.

    Resumable: it starts at window `start`, calls `checkpoint(windows_done, S)` after each
    window, and stops early (returning how many windows are done) when `should_stop()` says so.
    """
    L = backend.args.window_text
    n = -(-len(tokens) // L)
    for w in range(start, n):
        if should_stop and should_stop():
            return fast, w
        fast = sleep(backend, tokens[w * L:(w + 1) * L], fast, passes)
        if checkpoint:
            checkpoint(w + 1, fast)
        if progress:
            progress(w + 1, n)
    return fast, n

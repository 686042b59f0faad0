"""Sleep: consolidation of one window into the fast weights, a function of (window, S) -> S.

Pass 1 is the wake pass itself: the wake steps already left S^1 (the ordinary hybrid's state)
and the features h^1 in the window, so a light sleep (N = 1) costs nothing. Each further pass
reads the previous pass's features, carries S over, and starts with an empty attention cache
and a zero conv state. Only S survives the window.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgesleep.config import ModelArgs
from edgesleep.state import FastWeights, Window


@dataclass(frozen=True)
class SleepCost:
    """What one deep sleep cost: tokens consolidated, passes, CPU and wall seconds."""

    tokens: int
    passes: int
    cpu_s: float
    wall_s: float


def sleep(backend, window: Window, fast: FastWeights, passes: int) -> FastWeights:
    """Bring `window` to depth `passes`. `fast` is the state the window's wake pass left (S^1)."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    h, mask = window.features, window.mask()
    for _ in range(passes - 1):
        h, fast = backend.sleep_pass(h, mask, fast)
    return fast


def replay(backend, args: ModelArgs, tokens: list[int], fast: FastWeights, passes: int,
           progress: Callable[[int, int], None] | None = None,
           should_stop: Callable[[], bool] | None = None, start: int = 0,
           checkpoint: Callable[[int, FastWeights], None] | None = None) -> tuple[FastWeights, int]:
    """Deep sleep over a stretch of the journal: the same windows of L as at wake, each woken
    (pass 1) and then slept on with `passes` passes, from the deep state `fast`.

    Resumable: it starts at window `start`, calls `checkpoint(windows_done, S)` after each
    window, and stops early (returning how many windows are done) when `should_stop()` says so.
    """
    L = args.window
    n = -(-len(tokens) // L)
    for w in range(start, n):
        if should_stop and should_stop():
            return fast, w
        window = Window.empty(args)
        fast = fast.copy()
        for token in tokens[w * L:(w + 1) * L]:
            backend.step(token, window, fast)
        fast = sleep(backend, window, fast, passes)
        if checkpoint:
            checkpoint(w + 1, fast)
        if progress:
            progress(w + 1, n)
    return fast, n

"""A one-line progress bar on stderr, for long work (evaluation, deep sleep)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, stream=None):
        self.label, self.total, self.stream = label, max(1, total), stream or sys.stderr
        self.start = time.perf_counter()
        self.live = self.stream.isatty()

    def __call__(self, done: int, total: int | None = None) -> None:
        self.total = total or self.total
        if not self.live and done != self.total:
            return
        frac = done / self.total
        bar = "█" * int(24 * frac) + "░" * (24 - int(24 * frac))
        eta = (time.perf_counter() - self.start) / max(done, 1) * (self.total - done)
        end = "\n" if done >= self.total else ""
        self.stream.write(f"\r{self.label} {bar} {done}/{self.total}  eta {eta:4.0f}s{end}")
        self.stream.flush()

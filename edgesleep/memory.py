"""The memory: the one owner of the fast weights.

`consolidated` is the state after the last eviction: the version that is kept. Wake steps
update `fast`, the live copy, token by token; at each eviction the runtime commits the slept
state. This ephemeral memory lives in RAM only.
"""
from __future__ import annotations

from edgesleep.config import ModelArgs
from edgesleep.state import FastWeights


class Memory:
    def __init__(self, args: ModelArgs):
        self.args = args
        self.consolidated = FastWeights.zeros(args)
        self.fast = self.consolidated.copy()
        self.version = 0
        self.tokens_consolidated = 0

    def commit(self, fast: FastWeights, tokens: int) -> None:
        """Make `fast` the consolidated state after `tokens` more tokens."""
        if not fast.is_finite():
            self.fast = self.consolidated.copy()
            raise FloatingPointError("sleep produced non-finite fast weights; kept the previous version")
        self.consolidated, self.fast = fast, fast.copy()
        self.version += 1
        self.tokens_consolidated += tokens

    def reset(self) -> None:
        self.consolidated = FastWeights.zeros(self.args)
        self.fast = self.consolidated.copy()
        self.version += 1
        self.tokens_consolidated = 0

    @property
    def journal_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

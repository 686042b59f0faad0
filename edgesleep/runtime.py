"""The runtime: wake steps, eviction and sleep over one model and one memory.

text -> tokens -> journal -> backend wake step -> logits. Every L tokens the window is evicted
and consolidated lightly (N = 1, free: the wake pass computed it); `sleep()` brings everything
fed since the last deep version to depth N by replaying the journal.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgesleep.backends import Backend, load_backend
from edgesleep.backends.onnx import WEIGHTS_DATA
from edgesleep.config import Config
from edgesleep.journal import Record
from edgesleep.llama.assemble import assemble
from edgesleep.memory import Memory
from edgesleep.models import resolve
from edgesleep.progress import Progress
from edgesleep.sleep import SleepCost, replay
from edgesleep.state import Window
from edgesleep.tokenizer import Tokenizer


def fingerprint(model_dir: Path, config: Config, manifest: dict | None = None) -> str:
    """What a memory is bound to: the model's architecture and weights (not the backend). A model
    over a pretrained base: its base's GGUF and memory layers, as its assembly's manifest records."""
    h = hashlib.sha256(json.dumps(asdict(config.args), sort_keys=True).encode())
    if manifest is not None:
        h.update(f"{manifest['gguf_sha256']} {manifest['memory_sha256']}".encode())
        return h.hexdigest()
    # the weights: the safetensors copy, or else the ONNX graphs' shared weights file and graph
    files = ["weights.safetensors"] if (model_dir / "weights.safetensors").exists() else \
        [f for f in (WEIGHTS_DATA, "model.onnx") if (model_dir / f).exists()]
    for f in files:
        h.update((model_dir / f).read_bytes())
    return h.hexdigest()


class Runtime:
    """One model, one memory. Use `edgesleep.open` to make one."""

    def __init__(self, model_dir: str | Path, memory: str | Path | None = None, backend: str = "onnx",
                 passes: int | None = None, threads: int | None = None):
        self._passes = _depth(passes)
        self.model_dir = resolve(model_dir)
        self.config = Config.load(self.model_dir)
        graphs, manifest = self.model_dir, None
        if self.config.base is not None:  # memory layers over a pretrained base: built on first open
            graphs, manifest = assemble(self.model_dir, self.config, Progress(f"assembling {self.model_dir.name}", 5),
                                        say=lambda s: print(f"warning: {s}", file=sys.stderr))
        self.tokenizer = Tokenizer.from_file(graphs / "tokenizer.json")
        self._chat = json.loads((graphs / "chat.json").read_text()) if (graphs / "chat.json").exists() else None
        self.backend: Backend = load_backend(backend, graphs, self.config, threads)
        try:
            self._memory = Memory(memory, self.config.args, fingerprint(self.model_dir, self.config, manifest),
                                 model=str(self.model_dir.resolve()))
        except BaseException:
            self.backend.close()
            raise
        self.window = Window.empty(self.config.args)
        self.last_sleep: SleepCost | None = None
        self._logits: np.ndarray | None = None
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    @property
    def passes(self) -> int:
        """The depth N of a deep sleep: `passes` given at open, else the deepest the model was
        trained for (its config.json's "passes")."""
        return self._passes or self.config.deep_passes

    @property
    def warnings(self) -> list[str]:
        """What the memory fell back from at open (a corrupt version, a torn journal tail)."""
        return self._memory.warnings

    def _recover(self) -> None:
        """Rebuild the window from the head version, then replay what the journal holds beyond
        it (input fed before a crash, or after an interrupted correction)."""
        self._run(self._memory.head.pending)
        for record in self._memory.unconsolidated():
            self._consume(record)

    # -- wake ---------------------------------------------------------------------------------
    def feed(self, text: str) -> int:
        """Append `text` to the stream (durably, in the journal) and wake on it; every full
        window is evicted and consolidated. Returns the number of tokens fed."""
        ids = self.tokenizer.encode(text)
        if ids:
            self._consume(self._memory.append(ids))
        return len(ids)

    def _consume(self, record: Record) -> None:
        if self._run(record.ids):
            self._memory.commit(record.seq, self.window.text)

    def _run(self, ids: list[int]) -> int:
        """Wake on `ids`, as much of a window at a time as the backend takes; every full window
        is evicted. Returns how many were."""
        evicted, at = 0, 0
        while at < len(ids):
            if not self.window.pos and self.window.opener is not None:
                self.backend.step(self.window.opener, self.window, self._memory.fast)
            n = min(self.window.length - self.window.pos, len(ids) - at)
            self._logits = self.backend.feed(ids[at:at + n], self.window, self._memory.fast)
            at += n
            if self.window.full:
                self._memory.evict(len(self.window.text))
                self.window = Window.empty(self.config.args)
                evicted += 1
        return evicted

    # -- sleep --------------------------------------------------------------------------------
    def sleep(self, passes: int | None = None, progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> SleepCost | None:
        """Consolidate everything fed since the last deep version with N passes (`passes`, else
        the N given at open, else the model's trained depth), the partial window included, and
        clear the attention cache. Synchronous and idempotent; resumable when `should_stop`
        interrupts it (returns None then)."""
        n = _depth(passes) or self.passes
        if not self.needs_sleep():
            return self.last_sleep
        wall, cpu = time.perf_counter(), time.process_time()
        deep = self._memory.begin_sleep(n)
        if n == 1:  # the light state is already the N = 1 state: nothing to replay
            self._memory.evict(len(self.window.text))
            fast = self._memory.consolidated
        else:
            fast, done = replay(self.backend, deep.tokens, deep.fast, n, progress, should_stop,
                                deep.windows_done, deep.checkpoint)
            if done < -(-len(deep.tokens) // self.config.args.window_text):
                return None
        cost = SleepCost(len(deep.tokens), n, time.process_time() - cpu, time.perf_counter() - wall)
        try:
            deep.commit(fast, {"tokens": cost.tokens, "passes": cost.passes, "cpu_s": cost.cpu_s, "wall_s": cost.wall_s})
        except FloatingPointError:
            self._rebuild()  # back to the head version and the journal after it
            raise
        self.window = Window.empty(self.config.args)
        self.last_sleep = cost
        return cost

    def needs_sleep(self) -> bool:
        """Whether anything fed is not yet consolidated deeply."""
        head = self._memory.head
        return not (head.deep and head.end_seq == self._memory.journal.last_seq and not self.window.pos)

    # -- queries ------------------------------------------------------------------------------
    def answer(self, question: str) -> str:
        """The greedy next token after `question`, from the current state. A pure query: the
        window, the fast weights and the journal are left exactly as they were."""
        ids = self.tokenizer.encode(question)
        if not ids:
            raise ValueError("empty question")
        with self._pure_query():
            self._run(ids)
            return self.tokenizer.token_text(self._greedy(self._logits))

    @contextmanager
    def _pure_query(self) -> Iterator[None]:
        """Whatever runs inside leaves the window, the fast weights and the logits as they were
        (the journal is written only by feeds)."""
        saved = (self.window.copy(), self._memory.snapshot(), self._logits)
        try:
            yield
        finally:
            self.window, snap, self._logits = saved
            self._memory.restore_snapshot(snap)

    def ask(self, question: str, max_tokens: int = 64) -> str:
        """The whole greedy answer to `question`, a pure query like `answer`. A chat model wraps
        it in its chat template, default system prompt included, and stops at end of turn; a
        task model answers with one token, as `answer`."""
        if self._chat is None:
            return self.answer(question)
        if not question.strip():
            raise ValueError("empty question")
        ids = self.tokenizer.encode(self._prompt(question))
        if len(ids) + 1 > self.config.args.window_text:
            raise ValueError(f"the question takes {len(ids)} tokens with its chat template; the window holds "
                             f"{self.config.args.window_text}: ask a shorter one, or feed the text and ask about it")
        with self._pure_query():
            self._run(ids)
            out: list[int] = []
            for _ in range(max_tokens):
                token = self._greedy(self._logits)
                if token in self._ends:
                    break
                out.append(token)
                self._run([token])
            return self.tokenizer.decode(out).strip()

    def _prompt(self, message: str) -> str:
        """One user turn in the chat template (ChatML), with the default system prompt."""
        system = self._chat.get("system")
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
        return f"{head}<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"

    @property
    def _ends(self) -> set[int]:
        """The tokens that end a chat model's turn: the template's end of turn and end of text."""
        return {self.tokenizer.vocab.get(self._chat["end"], self._chat["eos_id"]), self._chat["eos_id"]}

    @property
    def chat_template(self) -> bool:
        """Whether this model chats (has a chat template): `ask` and `chat` use it."""
        return self._chat is not None

    def chat(self, message: str, max_tokens: int = 256) -> Iterator[str]:
        """One chat turn, streamed: `message` in the chat template, then the reply; both are fed
        into the memory, as the stream goes on. Every turn carries the default system prompt, so
        that it stands on its own once earlier turns are evicted."""
        if self._chat is None:
            raise ValueError(f"{self.model_dir.name} has no chat template; use feed and answer")
        ends = {self.tokenizer.token_text(t) for t in self._ends}
        ended = False
        for piece in self.generate(self._prompt(message), max_tokens=max_tokens, stop=list(ends)):
            for end in ends:
                if piece.endswith(end):  # the end of turn is fed, not shown
                    piece, ended = piece[:-len(end)], True
            if piece:
                yield piece
        # a reply cut off at max_tokens still closes its turn, so that the next one starts clean
        self.feed(("" if ended else self._chat["end"]) + "\n")

    @property
    def logits(self) -> np.ndarray | None:
        """The next-token logits after the last token fed (a copy; None before any)."""
        return None if self._logits is None else self._logits.copy()

    def _greedy(self, logits: np.ndarray) -> int:
        logits = logits.copy()
        logits[self.tokenizer.special_ids] = -np.inf
        return int(np.argmax(logits))

    def generate(self, prompt: str, max_tokens: int = 16, temperature: float = 0.0, top_p: float = 1.0,
                 stop: list[str] | tuple[str, ...] = (), seed: int | None = None) -> Iterator[str]:
        """Feed `prompt`, then stream tokens, each fed back into the stream. Greedy at
        temperature 0; otherwise sampled from the top-p nucleus. Stops after a token in `stop`."""
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        rng = np.random.default_rng(seed)
        self.feed(prompt)
        if self._logits is None:
            raise ValueError("generate needs a prompt or earlier input")
        out, shown = [], ""
        for _ in range(max_tokens):
            token = self._greedy(self._logits) if temperature == 0 else self._sample(temperature, top_p, rng)
            self._consume(self._memory.append([token]))
            word = self.tokenizer.token_text(token)
            if self.tokenizer.is_words:
                yield word
            else:  # byte-level tokens: yield text once its characters are whole
                out.append(token)
                text = self.tokenizer.decode(out)
                if not text.endswith("\ufffd"):
                    yield text[len(shown):]
                    shown = text
            if word in stop:
                return

    def _sample(self, temperature: float, top_p: float, rng: np.random.Generator) -> int:
        logits = self._logits.astype(np.float64) / temperature
        logits[self.tokenizer.special_ids] = -np.inf
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-p)
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        return int(rng.choice(keep, p=p[keep] / p[keep].sum()))

    # -- correction ---------------------------------------------------------------------------
    def forget(self, text: str | None = None, since: float | None = None, until: float | None = None) -> int:
        """Retract every journalled feed that contains `text` (as whole words) or was fed in
        [since, until], then rebuild the memory by replay without it. Returns how many feeds
        were retracted."""
        words = self.tokenizer.encode(text) if text else None
        def hit(r: Record) -> bool:
            if words:
                return any(r.ids[i:i + len(words)] == words for i in range(len(r.ids) - len(words) + 1))
            return (since is None or r.t >= since) and (until is None or r.t <= until)
        if words is None and since is None and until is None:
            raise ValueError("forget needs text or a time range")
        seqs = {r.seq for r in self._memory.journal.records if hit(r) and r.seq > self._memory.head.start_seq}
        if not seqs:
            return 0
        self._memory.retract(seqs, self._memory.plan_forget(seqs))
        self._rebuild()
        return len(seqs)

    def rollback(self, version: int) -> None:
        """Return to a kept version; what was fed after it is discarded."""
        self._memory.rollback(version)
        self._rebuild()

    def _rebuild(self) -> None:
        self.window = Window.empty(self.config.args)
        self._logits = None
        self._recover()

    def reset(self) -> None:
        """Start from empty memory (older versions stay, so rollback can undo it)."""
        self._memory.reset()
        self.window = Window.empty(self.config.args)
        self._logits = None

    # -- versions -----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The head version of the memory: the one the fast weights come from."""
        return self._memory.head.id

    def versions(self) -> list[dict]:
        """The kept versions, oldest first: id, kind, time, passes, tokens consolidated."""
        out = []
        for vid in self._memory.version_ids():
            v, _ = self._memory.read(vid)
            out.append({"id": v.id, "kind": v.kind, "time": v.time, "passes": v.passes,
                        "tokens_consolidated": v.tokens_consolidated})
        return out

    def backup(self, dest: str | Path) -> Path:
        """Copy the memory folder to `dest` (a new path), consistently: under this runtime's lock."""
        return self._memory.backup(dest)

    # -- housekeeping -------------------------------------------------------------------------
    def status(self) -> dict:
        s, head, mem = self.last_sleep, self._memory.head, self._memory
        return {
            "model": str(self.model_dir), "backend": self.backend.name, "passes": self.passes,
            "window": {"fill": len(self.window.text), "size": self.config.args.window_text},
            "tokens_consolidated": head.tokens_consolidated + mem.unsaved_tokens,
            "journal_tokens": sum(len(r.ids) for r in mem.journal.records),
            "journal_bytes": mem.journal.size_bytes,
            "memory_version": head.id, "memory_kind": head.kind, "deep_passes": head.passes,
            "versions": mem.version_ids(), "memory_bytes": mem.size_bytes,
            "last_sleep": (head.cost or None) if s is None else {
                "tokens": s.tokens, "passes": s.passes, "cpu_s": round(s.cpu_s, 6), "wall_s": round(s.wall_s, 6)},
            "warnings": list(mem.warnings),
        }

    def close(self) -> None:
        try:
            self._memory.close()
        finally:
            self.backend.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _depth(passes: int | None) -> int | None:
    if passes is None:
        return None
    if int(passes) < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    return int(passes)

"""`edgesleep demo`: facts stated over several windows, evicted, and recalled from the fast
weights alone."""
from __future__ import annotations

import sys
import time

import numpy as np

from edgesleep.runtime import Runtime
from edgesleep.tasks import get_task


class Style:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, t: str) -> str:
        return self(t, "1")

    def dim(self, t: str) -> str:
        return self(t, "2")

    def good(self, t: str) -> str:
        return self(t, "32")

    def bad(self, t: str) -> str:
        return self(t, "31")


def run_demo(model: str = "facts", passes: int | None = None, seed: int = 7, out=sys.stdout) -> dict:
    """Feed one held-out facts example window by window, sleep, and ask every question.
    Returns the figures it printed. `passes` defaults to the deepest the model was trained with."""
    st = Style(out.isatty())
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    rt = Runtime(model, passes=passes)
    cfg, L = rt.config, rt.config.args.window_text
    if cfg.task["name"] != "facts":
        raise ValueError(f"the demo needs a facts model; {rt.model_dir} was trained for {cfg.task['name']}")
    example = get_task("facts").sample(np.random.default_rng(seed), questions=10)
    words = example.context.split()

    say(st.bold("edgesleep demo") + st.dim(f"  model {rt.model_dir.name}: {cfg.args.d_model}-wide hybrid of "
                                            f"{', '.join(cfg.args.layer_types)}; backend {rt.backend.name}"))
    say(f"The attention cache holds one window of L={L} tokens. Each full window is evicted into the GDN "
        f"fast weights; then a deep sleep of N={rt.passes} passes consolidates them, and only they survive.\n")
    say(st.bold(f"1. Wake: {len(words)} tokens of personal facts, {-(-len(words) // L)} windows"))
    t0 = time.perf_counter()
    for w in range(0, len(words), L):
        chunk = words[w:w + L]
        rt.feed(" ".join(chunk))
        preview = " ".join(chunk)
        preview = preview if len(preview) < 72 else preview[:69] + "..."
        fill = rt.status()["window"]["fill"]
        state = (f"evicted: light sleep (N=1, free), cache {fill}/{L}" if len(chunk) == L
                 else f"still in the cache: {fill}/{L}")
        say(f"  window {w // L + 1}  {st.dim(preview)}\n            {state}")
    wake_s = time.perf_counter() - t0

    say(st.bold(f"\n2. Sleep: {rt.passes} recurrent passes over every window, replayed from the journal"))
    cost = rt.sleep()
    status = rt.status()
    say(f"  {cost.tokens} tokens x {cost.passes} passes in {cost.wall_s:.2f} s ({cost.cpu_s:.2f} CPU s); "
        f"attention cache {st.bold(str(status['window']['fill']))}/{L}: "
        f"{status['tokens_consolidated']} tokens now live only in the fast weights.\n")

    say(st.bold("3. Recall: each question answered from the fast weights alone"))
    right: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for q in example.questions:
        got = rt.answer(q.text)
        ok = got == q.answer
        right.setdefault(q.kind, []).append(ok)
        mark = st.good("✓") if ok else st.bad("✗")
        extra = "" if ok else st.dim(f" (expected {q.answer})")
        say(f"  {mark} {q.text:<36} {st.bold(got)}{extra}  {st.dim(q.kind)}")
    ask_s = time.perf_counter() - t0
    q_tokens = sum(len(q.text.split()) for q in example.questions)
    total = sum(sum(v) for v in right.values())
    say(f"\n  recalled {st.bold(f'{total}/{len(example.questions)}')}: " +
        ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(right.items())) +
        st.dim(f"  (chance: about 1 in {len(get_task('facts').CITIES)})"))

    say(st.bold("\n4. Cost"))
    say(f"  wake:  {wake_s / len(words) * 1e3:.2f} ms per token fed, {ask_s / q_tokens * 1e3:.2f} ms per question token")
    say(f"  sleep: {cost.cpu_s / (cost.tokens * cost.passes) * 1e6:.0f} CPU µs per token per pass "
        f"(every pass on the sleep graph, replayed from the journal)")
    rt.close()
    return {"correct": total, "questions": len(example.questions), "wake_s_per_token": wake_s / len(words),
            "sleep": cost}

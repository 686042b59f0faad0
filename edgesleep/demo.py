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


def run_demo(model: str = "facts", passes: int = 4, seed: int = 7, out=sys.stdout) -> dict:
    """Feed one held-out facts example window by window, sleep, and ask every question.
    Returns the figures it printed."""
    st = Style(out.isatty())
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    rt = Runtime(model, passes=passes)
    cfg, L = rt.config, rt.config.window
    if cfg.task["name"] != "facts":
        raise ValueError(f"the demo needs a facts model; {rt.model_dir} was trained for {cfg.task['name']}")
    example = get_task("facts").sample(np.random.default_rng(seed), questions=10)
    words = example.context.split()

    say(st.bold("edgesleep demo") + st.dim(f"  model {rt.model_dir.name}: {cfg.args.d_model}-wide hybrid of "
                                            f"{', '.join(cfg.args.layer_types)}; backend {rt.backend.name}"))
    say(f"The attention cache holds one window of L={L} tokens. At each eviction the window is slept on "
        f"({passes} passes) into the GDN fast weights, and only those survive.\n")
    say(st.bold(f"1. Wake: feeding {len(words)} tokens of personal facts ({-(-len(words) // L)} windows)"))
    wake_s, sleeps = 0.0, []
    for w in range(0, len(words), L):
        chunk = " ".join(words[w:w + L])
        t0 = time.perf_counter()
        rt.feed(chunk)
        if rt.window.pos:  # the last, partial window: consolidate it too before any question
            wake_s += time.perf_counter() - t0
            cost = rt.sleep()
        else:
            cost = rt.last_sleep
            wake_s += time.perf_counter() - t0 - cost.wall_s
        sleeps.append(cost)
        preview = chunk if len(chunk) < 70 else chunk[:67] + "..."
        say(f"  window {len(sleeps)} {st.dim(preview)}")
        say(f"           {cost.tokens} tokens slept on with {cost.passes} passes in {cost.wall_s * 1e3:.1f} ms, "
            f"cache now {rt.window.pos}/{L}")
    status = rt.status()
    say(f"  attention cache: {st.bold(str(status['window']['fill']))}/{L} slots in use; "
        f"{status['tokens_consolidated']} tokens live on only in the fast weights.\n")

    say(st.bold("2. Recall: each question answered from the fast weights alone"))
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
        st.dim(f"  (chance about 1 in {len(get_task('facts').CITIES)})"))

    slept = [c for c in sleeps if c.passes > 1]
    sleep_s = sum(c.wall_s for c in slept)
    sleep_tokens = sum(c.tokens * (c.passes - 1) for c in slept)
    say(st.bold("\n3. Cost"))
    say(f"  wake:  {wake_s / len(words) * 1e3:.2f} ms per token fed, {ask_s / q_tokens * 1e3:.2f} ms per question token")
    if sleep_tokens:
        say(f"  sleep: {sleep_s * 1e3:.1f} ms for {len(slept)} windows x {passes - 1} extra passes "
            f"= {sleep_s / sleep_tokens * 1e6:.0f} µs per token per pass (pass 1 is the wake pass: free)")
    rt.close()
    return {"correct": total, "questions": len(example.questions), "wake_s_per_token": wake_s / len(words),
            "sleep_s": sleep_s}

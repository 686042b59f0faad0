"""How faithfully the numpy+onnx SmolLM2 follows llama.cpp on the same GGUF (no memory layers).

1. Teacher-forced: corpus.TEXT (about 2.5k tokens), window by window (L tokens, both sides
   reset at each boundary), top-1 agreement of every position's logits; through the feed
   (a whole window in one call) and through steps (one token per call).
   The yardstick: llama.cpp against itself, each window as one batch vs token by token.
2. Greedy chat: 50 short prompts in ChatML with the GGUF's default system prompt, up to 48
   tokens each; how many answers are equal token for token.
For three builds:
  int8        MatMulNBits accuracy_level 4 everywhere (int8 activations, as llama.cpp): the default
  float       accuracy_level 0 everywhere: the GGUF's weights in float arithmetic, within 1e-4
              of a float64 numpy forward, so its agreement with llama.cpp is llama.cpp's own
              distance from exact math. Feed path only: at one token its 8-bit LM head has no
              fast kernel (6 tokens/s)
  float-body  accuracy_level 0 for the Q4 layers, 4 for the LM head: steps and chat

    python research/smollm2/faithfulness.py [--window 256] [--configs int8,float,float-body]
Writes research/smollm2/results/faithfulness.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smol  # noqa: E402
from corpus import TEXT  # noqa: E402

from edgesleep.llama.session import WakeSession  # noqa: E402

PROMPTS = [
    "What is the capital of France?", "Give me three tips for sleeping better.", "What is 17 times 23?",
    "Write a haiku about autumn.", "Explain photosynthesis in one sentence.", "Who wrote Romeo and Juliet?",
    "Translate 'good morning' into Spanish.", "What is the boiling point of water in Fahrenheit?",
    "Name three primary colors.", "Write a Python function that reverses a string.",
    "What does CPU stand for?", "Summarize the plot of Cinderella in two sentences.",
    "Is a tomato a fruit or a vegetable?", "How many continents are there?", "What is the square root of 144?",
    "Suggest a name for a pet goldfish.", "Why is the sky blue?", "List the days of the week.",
    "What is the largest planet in our solar system?", "How do I make a cup of tea?",
    "Write a limerick about a cat.", "What is the difference between weather and climate?",
    "Convert 5 kilometers to miles.", "What year did World War II end?", "Give me a synonym for 'happy'.",
    "What is machine learning?", "Tell me a fun fact about octopuses.", "How many legs does a spider have?",
    "What is the chemical symbol for gold?", "Write a short thank-you note to a teacher.",
    "What are the three states of matter?", "Explain what a noun is.", "What is the speed of light?",
    "Recommend a book for a ten-year-old.", "How do vaccines work?", "What is the opposite of 'ancient'?",
    "Write a SQL query that counts rows in a table called users.", "What causes earthquakes?",
    "Describe the color green to someone who cannot see.", "What is 2 to the power of 10?",
    "Give me a packing list for a weekend camping trip.", "Who painted the Mona Lisa?",
    "What is a prime number?", "How can I save money on groceries?", "What language is spoken in Brazil?",
    "Write one sentence using the word 'serendipity'.", "What is the freezing point of water in Celsius?",
    "Explain recursion to a beginner.", "What is the tallest mountain in the world?",
    "Say hello in a friendly way.",
]


def windows(ids: list[int], L: int) -> list[list[int]]:
    return [ids[i:i + L] for i in range(0, len(ids), L)]


CONFIGS = {  # name: (accuracy_level, LM head's accuracy_level, steps and chat too)
    "int8": (4, None, True),
    "float": (0, None, False),
    "float-body": (0, 4, True),
}


def llama_self(llm, ids: list[int], L: int) -> tuple[dict, np.ndarray]:
    """llama.cpp against itself: each window as one batch and token by token. Returns the
    agreement and the token-by-token argmax per position."""
    agree, n, diff, steps_top1 = 0, 0, 0.0, []
    for win in windows(ids, L):
        llm.reset()
        llm.eval(win)
        batch = np.array(llm.scores[:len(win)])
        llm.reset()
        steps = []
        for t in win:
            llm.eval([t])
            steps.append(np.array(llm.scores[llm.n_tokens - 1]))
        steps = np.stack(steps)
        steps_top1.append(steps.argmax(1))
        agree += int((steps.argmax(1) == batch.argmax(1)).sum())
        n += len(win)
        diff = max(diff, float(np.abs(steps - batch).max()))
    return {"top1_agree_batch_vs_step": agree / n, "max_abs_logit_diff": diff}, np.concatenate(steps_top1)


def teacher_forced(llm, ids: list[int], L: int, config: str, top1: dict) -> dict:
    """Agreement with llama.cpp; `top1` collects our argmax per position, by config."""
    level, head, steps_too = CONFIGS[config]
    feed = WakeSession(smol.graph(level, all_logits=True, head_accuracy_level=head), window=L)
    step = WakeSession(smol.graph(level, head_accuracy_level=head), window=L) if steps_too else None
    agree_feed = agree_step = n = 0
    diffs, ref_top_margin, ours_top1, ref_top1, steps_top1 = [], [], [], [], []
    for win in windows(ids, L):
        llm.reset()
        llm.eval(win)
        ref = np.array(llm.scores[:len(win)])
        feed.reset()
        ours = feed.feed(win)
        if step is not None:
            step.reset()
            steps = np.stack([step.feed([t]) for t in win])
            steps_top1.append(steps.argmax(1))
            agree_step += int((steps.argmax(1) == ref.argmax(1)).sum())
        ours_top1.append(ours.argmax(1))
        ref_top1.append(ref.argmax(1))
        agree_feed += int((ours.argmax(1) == ref.argmax(1)).sum())
        n += len(win)
        diffs.append(np.abs(ours - ref).max(1))
        top2 = np.sort(ref, 1)[:, -2:]
        ref_top_margin.append(top2[:, 1] - top2[:, 0])
    d = np.concatenate(diffs)
    margin = np.concatenate(ref_top_margin)
    top1[config], top1["llama.cpp"] = np.concatenate(ours_top1), np.concatenate(ref_top1)
    disagree = top1[config] != top1["llama.cpp"]
    result = {"tokens": n, "window": L, "top1_agree_feed": agree_feed / n,
            "top1_agree_step": agree_step / n if step is not None else None,
            "max_abs_logit_diff": {"max": float(d.max()), "median": float(np.median(d)), "mean": float(d.mean())},
            "llamacpp_top2_margin_at_disagreements": {
                "median": float(np.median(margin[disagree])) if disagree.any() else None,
                "max": float(margin[disagree].max()) if disagree.any() else None},
            "llamacpp_top2_margin_median_overall": float(np.median(margin))}
    if "llama.cpp step" in top1:  # ours against llama.cpp's own token-by-token path
        result["top1_agree_feed_vs_llamacpp_step"] = float((top1[config] == top1["llama.cpp step"]).mean())
        if step is not None:
            result["top1_agree_step_vs_llamacpp_step"] = float((np.concatenate(steps_top1) == top1["llama.cpp step"]).mean())
    return result


def chat(llm, tok, config: str, answers: dict, n: int = 48) -> dict:
    """Greedy answers of both sides; `answers` collects ours by config (and llama.cpp's)."""
    level, head, _ = CONFIGS[config]
    s = WakeSession(smol.graph(level, head_accuracy_level=head), window=512)
    answers[config], answers["llama.cpp"] = [], []
    equal, first_diff, rows = 0, [], []
    for q in PROMPTS:
        prompt = tok.encode(tok.chat(q))
        a, b = smol.greedy_ours(s, prompt, n, tok.eos_id), smol.greedy_llama(llm, prompt, n, tok.eos_id)
        answers[config].append(a)
        answers["llama.cpp"].append(b)
        same = a == b
        equal += same
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        if not same:
            first_diff.append(k)
        rows.append({"prompt": q, "equal": same, "first_diff": None if same else k,
                     "ours": tok.decode(a), "llama_cpp": tok.decode(b)})
    return {"prompts": len(PROMPTS), "max_new_tokens": n, "equal": equal,
            "first_divergence_token_index": first_diff, "answers": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "faithfulness.json"))
    args = ap.parse_args()
    tok = smol.tokenizer()
    ids = tok.encode(TEXT)
    ref_ids = smol.llama(64).tokenize(TEXT.encode(), add_bos=False, special=True)
    llm_all = smol.llama(args.window, logits_all=True)
    llm = smol.llama(512)
    result = {"gguf": smol.GGUF_NAME, "tokenizer_equal_on_corpus": ids == ref_ids, "configs": {}}
    configs = args.configs.split(",")
    top1, answers = {}, {}
    # the yardstick: how far llama.cpp's batched path is from its own single-token path
    result["llama_cpp_self"], top1["llama.cpp step"] = llama_self(llm_all, ids, args.window)
    print("llama.cpp batch vs step:", result["llama_cpp_self"], flush=True)
    for config in configs:
        t = time.time()
        tf = teacher_forced(llm_all, ids, args.window, config, top1)
        print(f"{config}: teacher-forced {tf['tokens']} tokens, top-1 agreement feed {tf['top1_agree_feed']:.4f} "
              f"step {tf['top1_agree_step']}", flush=True)
        result["configs"][config] = {"accuracy_level": CONFIGS[config][0],
                                     "head_accuracy_level": CONFIGS[config][1], "teacher_forced": tf}
        if CONFIGS[config][2]:
            ch = chat(llm, tok, config, answers)
            print(f"{config}: greedy chat equal {ch['equal']}/{ch['prompts']} ({time.time() - t:.0f} s)", flush=True)
            result["configs"][config]["chat"] = ch
    # "float" is the GGUF's weights in exact float arithmetic: its agreement with llama.cpp is
    # llama.cpp's own distance from exact math, and this is ours (int8 activations) from it
    if "int8" in top1 and "float" in top1:
        result["int8_vs_float"] = {"teacher_forced_top1_agree": float((top1["int8"] == top1["float"]).mean())}
    if "int8" in answers and "float-body" in answers:
        result["int8_vs_float-body_chat_equal"] = sum(a == b for a, b in zip(answers["int8"], answers["float-body"]))
    print({k: v for k, v in result.items() if k.startswith("int8_vs")})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()

"""The `edgesleep` command: a thin layer over the Python API.

Errors a user can cause end with one `error: ...` line on stderr and a non-zero exit code;
a fallback to the last good version prints `warning: ...` and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from edgesleep.progress import Progress

MAX_INPUT = 64 * 1024 * 1024  # bytes of text one `feed` accepts
BACKEND_HELP = "onnx (default), gguf (llama.cpp on model.gguf) or gguf:q8_0 (on model.q8_0.gguf)"
DEEP_HELP = "sleep depth N of a deep sleep (default: the deepest the model was trained for)"


def positive_ints(spec: str) -> list[int]:
    """An argparse type for comma lists such as `--passes 1,2,4`."""
    try:
        values = [int(v) for v in spec.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{spec!r}: give positive integers, e.g. 1,2,4")
    return values


def model_of(memory: str):
    from edgesleep.memory import model_of as recorded

    return recorded(memory)


def open_runtime(args: argparse.Namespace):
    from edgesleep.runtime import Runtime

    model = args.model or model_of(args.memory)
    if model is None:
        raise ValueError(f"--model is needed: {args.memory} records no model")
    rt = Runtime(model, memory=args.memory, passes=getattr(args, "passes", None),
                 backend=getattr(args, "backend", "onnx"))
    for w in rt.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return rt


def cmd_demo(args: argparse.Namespace) -> None:
    from edgesleep.demo import run_demo

    run_demo(args.model or "facts", passes=args.passes, seed=args.seed)


def cmd_eval(args: argparse.Namespace) -> None:
    from edgesleep.eval import evaluate
    from edgesleep.tasks import kind_order

    result = evaluate(args.model, args.passes, examples=args.examples, seed=args.seed, task=args.task,
                      backend=args.backend, progress=Progress("eval", args.examples))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    kinds = sorted(result["counts"], key=kind_order)
    print(f"{result['task']}: {result['examples']} held-out examples (seed {result['seed']}), "
          f"accuracy per question kind (questions: " + ", ".join(f"{k} {result['counts'][k]}" for k in kinds) + ")")
    print(f"{'passes':>7} " + " ".join(f"{k:>8}" for k in kinds))
    for n, acc in result["accuracy"].items():
        print(f"{n:>7} " + " ".join(f"{acc[k]:8.3f}" for k in kinds))


def read_input(source: str) -> str:
    raw = sys.stdin.buffer.read(MAX_INPUT + 1) if source == "-" else Path(source).read_bytes()[:MAX_INPUT + 1]
    if len(raw) > MAX_INPUT:
        raise ValueError(f"input over {MAX_INPUT >> 20} MiB; feed it in parts")
    if b"\0" in raw:
        raise ValueError("input looks binary (it has NUL bytes); feed text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"input is not UTF-8 text ({e.reason} at byte {e.start})") from None


def cmd_feed(args: argparse.Namespace) -> None:
    text = read_input(args.file)
    with open_runtime(args) as rt:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        bar = Progress("feed", len(lines))
        tokens = 0
        for i, line in enumerate(lines, 1):
            tokens += rt.feed(line)
            bar(i)
        st = rt.status()
        print(f"fed {tokens} tokens; window {st['window']['fill']}/{st['window']['size']}; "
              f"memory version {st['memory_version']} ({st['memory_kind']})")


def cmd_ask(args: argparse.Namespace) -> None:
    with open_runtime(args) as rt:
        print(rt.ask(args.question, max_tokens=args.max_tokens))


def cmd_chat(args: argparse.Namespace) -> None:
    """Turns from stdin, replies streamed; every turn is fed into the memory."""
    if args.model is None and model_of(args.memory) is None:
        args.model = "smollm2"
    with open_runtime(args) as rt:
        if not rt.chat_template:
            raise ValueError(f"{rt.model_dir.name} does not chat (no chat template); use feed and ask")
        live = sys.stdin.isatty()
        if live:
            print(f"edgesleep chat: {rt.model_dir.name}, memory {args.memory} (version {rt.version}); "
                  "Ctrl-D to end", file=sys.stderr)
        while True:
            if live:
                print("you> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            for piece in rt.chat(line.strip(), max_tokens=args.max_tokens):
                print(piece, end="", flush=True)
            print(flush=True)


def cmd_sleep(args: argparse.Namespace) -> None:
    with open_runtime(args) as rt:
        cost = rt.sleep(progress=Progress(f"deep sleep, {rt.passes} passes", 1))
        if cost is None or not cost.tokens:
            print(f"nothing to consolidate; memory version {rt.version} is deep")
        else:
            print(f"consolidated {cost.tokens} tokens with {cost.passes} passes in {cost.wall_s:.2f} s "
                  f"({cost.cpu_s:.2f} CPU s); memory version {rt.version}")


def cmd_status(args: argparse.Namespace) -> None:
    from edgesleep.scheduler import read_sleep_log

    with open_runtime(args) as rt:
        st = rt.status()
    st["sleep_log"] = read_sleep_log(args.memory)
    if args.json:
        print(json.dumps(st, indent=1))
        return
    print(f"memory {args.memory}  (model {st['model']})")
    print(f"  window        {st['window']['fill']}/{st['window']['size']} tokens in the attention cache")
    print(f"  consolidated  {st['tokens_consolidated']} tokens; version {st['memory_version']} ({st['memory_kind']}, "
          f"deep part with {st['deep_passes']} passes); kept versions {st['versions']}")
    print(f"  journal       {st['journal_tokens']} tokens, {st['journal_bytes']} bytes; folder {st['memory_bytes']} bytes")
    if st["last_sleep"]:
        print("  last sleep    " + ", ".join(f"{k} {v}" for k, v in st["last_sleep"].items()))
    for rec in st["sleep_log"]:
        print(f"  daemon        {datetime.fromtimestamp(rec['t']):%Y-%m-%d %H:%M} {rec['reason']}: "
              f"{rec['tokens']} tokens, {rec['passes']} passes, {rec['cpu_s']} CPU s, joules {rec['joules']}")


def parse_time(s: str | None) -> float | None:
    if s is None:
        return None
    try:
        return float(s)
    except ValueError:
        return datetime.fromisoformat(s).timestamp()


def cmd_forget(args: argparse.Namespace) -> None:
    with open_runtime(args) as rt:
        n = rt.forget(args.text, since=parse_time(args.since), until=parse_time(args.until))
        print(f"retracted {n} feeds and rebuilt the memory without them (version {rt.version}); "
              f"run `edgesleep sleep` to deepen it again" if n else "nothing in the journal matched")


def cmd_rollback(args: argparse.Namespace) -> None:
    with open_runtime(args) as rt:
        if args.version is None:
            for v in rt.versions():
                print(f"  {v['id']:>6}  {v['kind']:<6} {datetime.fromtimestamp(v['time']):%Y-%m-%d %H:%M:%S}  "
                      f"{v['tokens_consolidated']} tokens consolidated")
            return
        rt.rollback(args.version)
        print(f"rolled back to version {args.version}")


def cmd_backup(args: argparse.Namespace) -> None:
    with open_runtime(args) as rt:
        print(f"backed up to {rt.backup(args.dest)}")


def cmd_restore(args: argparse.Namespace) -> None:
    from edgesleep.memory import restore

    restore(args.backup, args.memory)
    print(f"restored {args.memory} from {args.backup}")


def cmd_daemon(args: argparse.Namespace) -> None:
    from edgesleep.scheduler import Budget, Policy, daemon

    model = args.model or model_of(args.memory)
    if model is None:
        raise ValueError(f"--model is needed: {args.memory} records no model")
    print(f"edgesleep daemon: watching {args.memory} (idle after {args.idle}s, or on external power)", flush=True)
    daemon(model, Path(args.memory), args.passes, Policy(args.memory, args.idle),
           Budget(cpu_s=args.cpu_budget, joules=args.joule_budget),
           poll_s=args.poll, rounds=args.rounds, say=lambda s: print(s, flush=True))


def cmd_bench(args: argparse.Namespace) -> None:
    from edgesleep.bench import device_report, report_lines

    result = device_report(args.model, tokens=args.tokens)
    print(json.dumps(result, indent=1) if args.json else "\n".join(report_lines(result)))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgesleep", description="A small language model that sleeps.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, run, help: str, memory: bool = True, model: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        if memory:
            c.add_argument("--memory", required=True, help="the memory folder")
        if model:
            c.add_argument("--model", help="a model directory or bundled model name "
                                           "(default: the one the memory was made with)")
        c.set_defaults(run=run)
        return c

    d = command("demo", cmd_demo, "the main job: recall evicted facts from the fast weights", memory=False)
    d.add_argument("--passes", type=int, help=DEEP_HELP)
    d.add_argument("--seed", type=int, default=7)

    e = command("eval", cmd_eval, "held-out accuracy per question kind and number of sleep passes", memory=False)
    e.add_argument("--task", choices=["rule110", "depo", "facts"])
    e.add_argument("--passes", type=positive_ints,
                   help="sleep depths N to evaluate, e.g. 1,2,4 (default: 1, 2, 4 and the model's deepest)")
    e.add_argument("--examples", type=int, default=100)
    e.add_argument("--seed", type=int, default=1234)
    e.add_argument("--json", action="store_true")
    e.add_argument("--backend", default="onnx", help=BACKEND_HELP)

    f = command("feed", cmd_feed, "append text to the memory (wake; light sleep at each eviction)")
    f.add_argument("--passes", type=int)
    f.add_argument("--backend", default="onnx", help=BACKEND_HELP)
    f.add_argument("file", nargs="?", default="-", help="a text file, or - for stdin (default)")

    a = command("ask", cmd_ask, "answer a question from the memory (a pure query)")
    a.add_argument("question")
    a.add_argument("--max-tokens", type=int, default=64, help="longest answer of a chat model (default 64)")
    a.add_argument("--backend", default="onnx", help=BACKEND_HELP)

    c = command("chat", cmd_chat, "an interactive chat, streamed; every turn is fed into the memory "
                "(default model: smollm2)")
    c.add_argument("--max-tokens", type=int, default=256, help="longest reply (default 256)")

    s = command("sleep", cmd_sleep, "deep sleep now: consolidate everything fed with N passes")
    s.add_argument("--passes", type=int, help=DEEP_HELP)

    st = command("status", cmd_status, "window fill, consolidation, journal, versions, last sleeps")
    st.add_argument("--json", action="store_true")

    fg = command("forget", cmd_forget, "retract journalled input (by text, or by time) and rebuild without it")
    fg.add_argument("text", nargs="?", help="retract every feed containing these words")
    fg.add_argument("--since", help="retract feeds from this time on (ISO time or unix seconds)")
    fg.add_argument("--until", help="... up to this time")

    r = command("rollback", cmd_rollback, "list kept versions, or return to one")
    r.add_argument("version", nargs="?", type=int)

    b = command("backup", cmd_backup, "copy the memory folder (consistently, under its lock)")
    b.add_argument("dest")

    rs = command("restore", cmd_restore, "replace the memory folder with a backup (the old one is kept aside)",
                 model=False)
    rs.add_argument("backup")

    dm = command("daemon", cmd_daemon, "deep-sleep when the device is idle or on external power")
    dm.add_argument("--passes", type=int, help=DEEP_HELP)
    dm.add_argument("--idle", type=float, default=300.0, help="seconds without use that count as idle")
    dm.add_argument("--poll", type=float, default=30.0)
    dm.add_argument("--cpu-budget", type=float, default=600.0, help="CPU seconds per deep sleep")
    dm.add_argument("--joule-budget", type=float, help="joules per deep sleep (where RAPL is readable)")
    dm.add_argument("--rounds", type=int, help="stop after this many polls (default: run until killed)")

    bn = command("bench", cmd_bench, "this device's figures: feed, wake step, deep sleep cost, answer latency, "
                 "memory (the full benchmark: python -m benchmarks.bench)", memory=False, model=False)
    bn.add_argument("--model", default="facts", help="a model directory or bundled model name (default: facts)")
    bn.add_argument("--tokens", type=int, default=2048, help="tokens to feed (default: 2048)")
    bn.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    from edgesleep.memory import MemoryError_

    args = parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, ImportError, NotImplementedError, FloatingPointError, MemoryError_) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

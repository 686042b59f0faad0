"""The `edgesleep` command: a thin layer over the Python API.

Errors a user can cause end with one `error: ...` line on stderr and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import json
import sys

from edgesleep.progress import Progress

NOT_YET = {
    "feed": "persistent memory folders",
    "ask": "persistent memory folders",
    "sleep": "persistent memory folders",
    "status": "persistent memory folders",
    "forget": "the journal",
    "rollback": "versioned fast weights",
    "backup": "persistent memory folders",
    "restore": "persistent memory folders",
    "daemon": "the idle/charging scheduler",
    "bench": "the benchmark suite",
}


def cmd_demo(args: argparse.Namespace) -> None:
    from edgesleep.demo import run_demo

    run_demo(args.model, passes=args.passes, seed=args.seed)


def cmd_eval(args: argparse.Namespace) -> None:
    from edgesleep.eval import evaluate

    passes = [int(p) for p in args.passes.split(",")]
    if any(p < 1 for p in passes):
        raise ValueError("--passes takes positive integers, e.g. 1,2,4")
    result = evaluate(args.model, passes, examples=args.examples, seed=args.seed, task=args.task,
                      progress=Progress("eval", args.examples * len(passes)))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    kinds = list(result["counts"])
    print(f"{result['task']}: {result['examples']} held-out examples (seed {result['seed']}), "
          f"accuracy per question kind (questions: " + ", ".join(f"{k} {result['counts'][k]}" for k in kinds) + ")")
    print(f"{'passes':>7} " + " ".join(f"{k:>8}" for k in kinds))
    for n, acc in result["accuracy"].items():
        print(f"{n:>7} " + " ".join(f"{acc[k]:8.3f}" for k in kinds))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgesleep", description="A small language model that sleeps.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="the main job: recall evicted facts from the fast weights")
    d.add_argument("--model", default="facts", help="a model directory or bundled model name")
    d.add_argument("--passes", type=int, default=4)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(run=cmd_demo)

    e = sub.add_parser("eval", help="held-out accuracy per depth and per number of sleep passes")
    e.add_argument("--model", required=True)
    e.add_argument("--task", choices=["rule110", "depo", "facts"])
    e.add_argument("--passes", default="1,2,4")
    e.add_argument("--examples", type=int, default=100)
    e.add_argument("--seed", type=int, default=1234)
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=cmd_eval)

    for name, what in NOT_YET.items():
        n = sub.add_parser(name, help=f"(needs {what}: not built yet)")
        n.set_defaults(run=lambda a, what=what: _not_yet(a.command, what))
    return p


def _not_yet(command: str, what: str) -> None:
    raise NotImplementedError(f"`edgesleep {command}` needs {what}, which this version does not have yet")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command not in NOT_YET:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, NotImplementedError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

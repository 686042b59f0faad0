"""The benchmark harness (`python -m benchmarks.bench --quick`) and the device report (`edgesleep
bench`) on the tiny model: the structure and sanity of their results. No timed assertions:
timings on a shared machine say nothing about correctness."""
import contextlib
import io
import json
import math

import pytest

from benchmarks.bench import main as harness, table
from edgesleep.cli import main as cli


@pytest.fixture(scope="module")
def bench(tiny, tmp_path_factory):
    """One quick run of the harness, which exports its baseline (torch): (stdout JSON, the results folder)."""
    pytest.importorskip("torch")
    path = tiny.path
    root = tmp_path_factory.mktemp("bench")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("EDGESLEEP_BASELINES", str(root / "baseline"))  # not the repository's folder
        harness(["--model", str(path), "--quick", "--json", "--name", "tiny", "--out", str(root / "results")])
    return json.loads(out.getvalue()), root


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_json_written_and_printed(bench):
    result, root = bench
    assert json.loads((root / "results" / "tiny.json").read_text()) == result
    assert (root / "baseline").is_dir() and any((root / "baseline").glob("full-attention-*.onnx"))
    for key in ("history", "depth", "sleep_cost", "footprint", "backends", "limit", "machine", "warnings"):
        assert key in result
    assert result["quick"] is True
    assert "1. answer latency vs history fed" in table(result)  # the table renders from the JSON too


def test_history_ratios(bench):
    h = bench[0]["history"]
    assert 1 < len(h["points"]) <= len(bench[0]["plan"]["history"])
    assert [p["tokens"] for p in h["points"]] == sorted(p["tokens"] for p in h["points"])
    for p in h["points"]:
        for key in ("answer_ms_per_token", "feed_tokens_per_s", "baseline_ms_per_token", "baseline_feed_tokens_per_s",
                    "baseline_kv_cache_mb"):
            assert positive(p[key]), key
        assert p["speedup_vs_baseline"] == pytest.approx(p["baseline_ms_per_token"] / p["answer_ms_per_token"])
    assert positive(h["feed_tokens_per_s"])
    assert h["baseline_graph"]["found"] in ("prebuilt", "exported now")


def test_depth_and_sleep_cost(bench):
    r = bench[0]
    rows = r["depth"]["rows"]
    assert [x["passes"] for x in rows] == [1, 2, 4, 8]
    assert rows[0]["ratio_vs_n1"] == 1.0
    for x in rows:
        assert positive(x["answer_ms_per_token"])
        assert x["ratio_vs_n1"] == pytest.approx(x["answer_ms_per_token"] / rows[0]["answer_ms_per_token"])
    assert isinstance(r["depth"]["met"], bool)
    s = r["sleep_cost"]
    assert s["window"] == 8
    for p in s["per_passes"]:
        assert p["tokens"] > 0 and positive(p["tokens_per_s"]) and positive(p["day_s_extrapolated"])
        assert p["cpu_s_per_token_per_pass"] == pytest.approx(p["cpu_s"] / (p["tokens"] * p["passes"]))
    deep = [p for p in s["per_passes"] if p["passes"] > 1]
    assert all(positive(p["predicted_cpu_s_per_token"]) for p in deep)
    assert positive(s["sleep_pass_cpu_s_per_token"]) and positive(s["wake_cpu_s_per_token"])
    assert (s["rapl"] == "readable") == all(p["joules"] is not None for p in s["per_passes"])
    # a sleep pass at other window lengths, from graphs exported for the same dims
    assert [w["window"] for w in s["by_window"]] == [16, 32]
    assert all(positive(w["sleep_pass_cpu_s_per_token"]) and positive(w["sleep_pass_ms"]) for w in s["by_window"])
    assert "by window length" in table(r)


def test_footprint(bench):
    f = bench[0]["footprint"]
    assert f["tokens"] >= bench[0]["plan"]["feed_tokens"]
    assert len(f["deep_sleeps"]) >= 3 and all(d["passes"] == 4 and d["tokens"] > 0 for d in f["deep_sleeps"])
    assert all(positive(x["rss_mb"]) and positive(x["folder_mb"]) for x in f["samples"])
    assert f["journal_compacts"] is True  # the journal is cut after deep sleeps: it never holds everything fed
    assert isinstance(f["met"], bool)


def test_backends_and_limit(bench):
    r = bench[0]
    rows = r["backends"]["wake"]
    assert rows[0]["setting"].endswith("(default)") and rows[0]["ratio_vs_default"] == 1.0
    assert any("I/O binding" in x["setting"] for x in rows)
    assert all(positive(x["ms_per_step"]) and positive(x["ratio_vs_default"]) for x in rows)
    assert positive(r["backends"]["python_ms_per_step"])
    names = {x["backend"] for x in rows} | set(r["backends"]["skipped"])
    assert {"onnx", "gguf", "gguf:q8_0"} <= names  # each llama.cpp variant measured or skipped with a reason
    lim = r["limit"]
    assert lim["flops"]["wake_token"] > 0 and lim["flops"]["sleep_pass_window"] == lim["flops"]["sleep_pass_token"] * 8
    assert positive(lim["numpy"]["gemm_gflops"])
    for p in lim["paths"]:
        assert positive(p["gflops"]) and p["x_from_limit"] == pytest.approx(p["ms"] / p["ms_at_gemm_peak"])
    w = lim["wake_time"]
    assert positive(w["run_ms"]) and positive(w["kernel_ms"]) and 0 < lim["profile"]["kernel_share"] <= 1
    assert lim["profile"]["nodes_per_run"] > 10 and lim["wake_graph_nodes"] > 10


def test_plots_or_warning(bench):
    result, root = bench
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("matplotlib" in w for w in result["warnings"]) and not result["plots"]
    else:
        assert len(result["plots"]) == 4
        assert all((root / "results" / p.split("/")[-1]).stat().st_size > 1000 for p in result["plots"])


def test_device_report_runs_on_the_runtime_alone(tiny, capsys):
    """`edgesleep bench`: every figure present and positive, the deep sleep at the model's depth."""
    assert cli(["bench", "--model", str(tiny.path), "--tokens", "64", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["sleep"]["passes"] == 2 and r["sleep"]["tokens"] >= 64  # the tiny model's deepest
    for x in (r["feed"]["tokens_per_s"], r["feed"]["wake_step_ms"], r["sleep"]["cpu_us_per_token_per_pass"],
              r["answer_ms_per_token"]["ratio"], r["rss_mb"]["two_runtimes_open"]):
        assert positive(x)
    assert cli(["bench", "--model", str(tiny.path), "--tokens", "16"]) == 0
    assert "python -m benchmarks.bench" in capsys.readouterr().out

"""The written contracts: the runtime stands alone, the state types round-trip, a deep sleep is
one memory transaction, and callers need nothing but the entry object's public side."""
import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import edgesleep
from edgesleep.backends import Backend
from edgesleep.backends.onnx import OnnxBackend
from edgesleep.config import Config
from edgesleep.state import FastWeights, Window

PACKAGE = Path(edgesleep.__file__).parent
FACTS = "alice lives in paris . alice has a cat . bob works as a chef . bob lives in rome ."


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_runtime_imports_neither_torch_nor_the_repository():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 15
    for path in files:
        bad = imported_modules(path) & {"torch", "export", "benchmarks", "research", "tests"}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
        src = path.read_text()
        assert "sys.path" not in src and "parents[" not in src, f"{path.relative_to(PACKAGE)} finds files by the checkout"


def test_bundled_models_resolve_through_the_package(monkeypatch, tmp_path):
    from edgesleep.models import resolve

    assert (resolve("facts") / "config.json").exists()
    monkeypatch.chdir(tmp_path)  # not from the checkout's folder
    assert resolve("facts").name == "facts"
    with pytest.raises(FileNotFoundError, match="bundled models: .*facts"):
        resolve("no-such-model")


def test_fast_weights_state_and_bytes_round_trip():
    rng = np.random.default_rng(0)
    fast = FastWeights({1: rng.normal(size=(2, 4, 4)).astype(np.float32), 3: rng.normal(size=(2, 4, 4)).astype(np.float32)})
    again = FastWeights.from_state(fast.state)
    assert list(fast.state) == ["S.1", "S.3"]
    for i in fast.S:
        np.testing.assert_array_equal(again.S[i], fast.S[i])
    header, back = FastWeights.from_bytes(fast.to_bytes({"id": 7}))
    assert header == {"id": 7}
    for i in fast.S:
        np.testing.assert_array_equal(back.S[i], fast.S[i])
    data = bytearray(fast.to_bytes({"id": 7}))
    data[40] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        FastWeights.from_bytes(bytes(data))
    with pytest.raises(ValueError):
        FastWeights.from_bytes(b"EDGESLEEP")


def test_window_state_round_trips(tiny):
    args = Config.load(tiny.path).args
    with edgesleep.open(tiny.path) as rt:
        rt.feed("alice lives in paris .")
        window = rt.window
        arrays, meta = window.state
        again = Window.from_state(arrays, meta)
    assert again.tokens == window.tokens and again.length == args.window and again.opener == window.opener
    assert set(again.kv) == set(args.attn_layers) and set(again.conv) == set(args.gdn_layers)
    for i, (k, v) in window.kv.items():
        np.testing.assert_array_equal(again.kv[i][0], k)
        np.testing.assert_array_equal(again.kv[i][1], v)


def test_backends_keep_the_protocol(tiny):
    from edgesleep.backends import gguf, llama

    config = Config.load(tiny.path)
    backend = OnnxBackend(tiny.path, config)
    for name in ("step", "feed", "embed", "sleep_pass", "close"):
        declared = [p for p in inspect.signature(getattr(Backend, name)).parameters if p != "self"]
        assert list(inspect.signature(getattr(backend, name)).parameters) == declared, name
        assert list(inspect.signature(getattr(gguf.GgufBackend, name)).parameters)[1:] == declared, name
        assert list(inspect.signature(getattr(llama.LlamaBackend, name)).parameters)[1:] == declared, name
    assert backend.name == "onnx" and backend.args == config.args

    assert not issubclass(gguf.GgufBackend, OnnxBackend) and OnnxBackend not in gguf.GgufBackend.__mro__


def test_sleep_defaults_to_the_trained_depth_and_takes_one(tiny, tmp_path):
    with edgesleep.open(tiny.path, memory=tmp_path / "m") as rt:
        assert rt.passes == 2  # the tiny model was trained with passes [1, 2]
        rt.feed(FACTS)
        assert rt.sleep().passes == 2 and rt.versions()[-1]["passes"] == 2
        rt.feed(FACTS)
        assert rt.sleep(passes=3).passes == 3
        v = rt.version
        assert [x["id"] for x in rt.versions()][-1] == v and rt.versions()[-1]["kind"] == "deep"
        assert (rt.backup(tmp_path / "b") / "memory.json").exists()
    with edgesleep.open(tiny.path, passes=1) as rt:
        assert rt.passes == 1
    with pytest.raises(ValueError, match="passes"):
        edgesleep.open(tiny.path, passes=0)


def test_deep_sleep_is_one_transaction(tiny, tmp_path):
    """Nothing changes before commit; a checkpoint is what an interrupted sleep resumes from;
    commit writes one deep version covering everything fed."""
    with edgesleep.open(tiny.path, memory=tmp_path / "m", passes=2) as rt:
        rt.feed(FACTS)
        mem = rt._memory
        head, versions = rt.version, rt.versions()
        deep = mem.begin_sleep(2)
        assert deep.windows_done == 0 and deep.tokens == rt.tokenizer.encode(FACTS)
        deep.checkpoint(1, deep.fast)
        assert rt.version == head and rt.versions() == versions  # a checkpoint is no version
        assert mem.begin_sleep(2).windows_done == 1  # ... but a resume point
        assert mem.begin_sleep(3).windows_done == 0  # for the same depth only
        v = deep.commit(deep.fast, {"note": "test"})
        assert v.deep and v.passes == 2 and rt.version == v.id == head + 1
        assert not (tmp_path / "m" / "deep.partial").exists()

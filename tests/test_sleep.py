"""Deep sleep's pass 1 runs on the sleep graph from token embeddings; it must leave the same
fast weights as the wake steps, whose S is the light sleep the runtime keeps at eviction."""
import numpy as np
import pytest

from edgesleep.backends.onnx import OnnxBackend
from edgesleep.config import Config
from edgesleep.sleep import sleep
from edgesleep.state import FastWeights, Window


@pytest.mark.parametrize("fill", [1.0, 0.6])  # a full window and the partial last one
def test_sleep_pass_one_is_the_wake_pass(tiny, fill):
    model_dir = tiny.path
    config = Config.load(model_dir)
    a = config.args
    backend = OnnxBackend(model_dir, config)
    rng = np.random.default_rng(0)
    before = FastWeights({i: rng.normal(0, 0.1, s.shape).astype(np.float32)
                          for i, s in FastWeights.zeros(a).S.items()})  # a window after others
    tokens = rng.integers(0, a.vocab_size, int(a.window * fill)).tolist()
    woken, window = before.copy(), Window.empty(a)
    for t in tokens:
        backend.step(t, window, woken)
    slept = sleep(backend, tokens, before, passes=1)
    for i in woken.S:
        np.testing.assert_allclose(slept.S[i], woken.S[i], atol=1e-5)
    deeper = sleep(backend, tokens, before, passes=3)
    assert any(np.abs(deeper.S[i] - woken.S[i]).max() > 1e-3 for i in woken.S)  # passes do something

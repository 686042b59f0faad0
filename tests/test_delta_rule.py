"""The NumPy gated delta rule, the torch recurrent step and the torch chunkwise form agree."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgesleep.delta_rule import delta_rule  # noqa: E402
from export.model import delta_rule_chunk, delta_step  # noqa: E402


def random_inputs(T=24, H=2, d=16, seed=0):
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    q = unit(rng.normal(size=(T, H, d))).astype(np.float32)
    k = unit(rng.normal(size=(T, H, d))).astype(np.float32)
    v = rng.normal(size=(T, H, d)).astype(np.float32)
    beta = rng.uniform(0.05, 1.0, size=(T, H)).astype(np.float32)
    g = -rng.uniform(0.0, 0.5, size=(T, H)).astype(np.float32)
    S0 = rng.normal(size=(H, d, d)).astype(np.float32) * 0.3
    return S0, q, k, v, beta, g


def test_numpy_matches_torch_step_and_chunk():
    S0, q, k, v, beta, g = random_inputs()
    o_np, S_np = delta_rule(S0, q, k, v, beta, g)

    t = lambda x: torch.from_numpy(x)  # noqa: E731
    S, outs = t(S0)[None], []
    for i in range(q.shape[0]):
        S, o = delta_step(S, t(q[i])[None], t(k[i])[None], t(v[i])[None], t(beta[i])[None], t(g[i])[None])
        outs.append(o[0] / np.sqrt(q.shape[-1]))
    np.testing.assert_allclose(torch.stack(outs).numpy(), o_np, atol=1e-5)
    np.testing.assert_allclose(S[0].numpy(), S_np, atol=1e-5)

    # chunkwise: (B, H, T, d) layout, unscaled read
    perm = lambda x: t(x).transpose(0, 1)[None]  # noqa: E731
    o_c, S_c = delta_rule_chunk(perm(q), perm(k), perm(v), perm(beta), perm(g), t(S0)[None])
    np.testing.assert_allclose((o_c[0].transpose(0, 1) / np.sqrt(q.shape[-1])).numpy(), o_np, atol=1e-4)
    np.testing.assert_allclose(S_c[0].numpy(), S_np, atol=1e-4)


def test_write_then_read_recalls_value():
    # One write with beta = 1 and no decay stores v under k exactly: S k = v.
    S0, q, k, v, beta, g = random_inputs(T=1)
    _, S = delta_rule(np.zeros_like(S0), k, k, v, np.ones_like(beta), np.zeros_like(g))
    np.testing.assert_allclose(np.einsum("hvk,hk->hv", S, k[0]), v[0], atol=1e-5)

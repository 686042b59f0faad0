"""The NumPy gated delta rule, the torch per-position loop and the torch chunkwise forms agree."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgesleep.delta_rule import delta_rule  # noqa: E402
from export.model import delta_rule_blocks, delta_rule_chunk, delta_rule_loop  # noqa: E402


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


def test_numpy_matches_torch_loop_and_chunk():
    S0, q, k, v, beta, g = random_inputs()
    o_np, S_np = delta_rule(S0, q, k, v, beta, g)

    # torch: (B, H, T, d) layout, unscaled read
    perm = lambda x: torch.from_numpy(x).transpose(0, 1)[None]  # noqa: E731
    S0_t = torch.from_numpy(S0)[None]
    for form, tol in ((delta_rule_loop, 1e-5), (delta_rule_chunk, 1e-4), (delta_rule_blocks, 1e-5)):
        o, S = form(perm(q), perm(k), perm(v), perm(beta), perm(g), S0_t)
        np.testing.assert_allclose((o[0].transpose(0, 1) / np.sqrt(q.shape[-1])).numpy(), o_np, atol=tol)
        np.testing.assert_allclose(S[0].numpy(), S_np, atol=tol)


def test_write_then_read_recalls_value():
    # One write with beta = 1 and no decay stores v under k exactly: S k = v.
    S0, q, k, v, beta, g = random_inputs(T=1)
    _, S = delta_rule(np.zeros_like(S0), k, k, v, np.ones_like(beta), np.zeros_like(g))
    np.testing.assert_allclose(np.einsum("hvk,hk->hv", S, k[0]), v[0], atol=1e-5)


@pytest.mark.parametrize("T", [24, 64, 20])
def test_blocks_stay_exact_on_a_repeated_key(T):
    """The sleep graph's blocked form inverts (I + A) by a Neumann series; one key written over
    and over with beta = 1 and no decay makes its terms largest. It must still match the loop
    (blocks of 16 miss by 1e-3 here, hence 8). T = 20 takes blocks of gcd(20, 8) = 4."""
    S0, q, k, v, beta, g = random_inputs(T=T, d=64)
    k[:] = k[:1]
    perm = lambda x: torch.from_numpy(x).transpose(0, 1)[None]  # noqa: E731
    args = [perm(q), perm(k), perm(v), perm(np.ones_like(beta)), perm(np.zeros_like(g)), torch.from_numpy(S0)[None]]
    o_ref, S_ref = delta_rule_loop(*[a.double() for a in args])  # float64: the exact reference
    o, S = delta_rule_blocks(*args)
    np.testing.assert_allclose(o.double().numpy(), o_ref.numpy(), atol=2e-5)
    np.testing.assert_allclose(S.double().numpy(), S_ref.numpy(), atol=2e-5)

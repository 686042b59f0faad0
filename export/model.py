"""The edgesleep reference model: a hybrid of gated attention and Gated DeltaNet, in torch.

It follows llama.cpp's `qwen35` layer by layer (export/to_gguf.py maps one to the other) so that
the same weights run in ONNX and GGUF:
- block: h = x + mixer(rms(x)); x' = h + swiglu(rms(h)); a final rms norm; tied embeddings.
- attention: q carries a per-head output gate, q/k get RMSNorm, NeoX RoPE, out * sigmoid(gate).
- GDN: a depthwise causal conv over [q|k|v] then SiLU, L2-normalised q and k,
  S <- exp(g) S;  S <- S + beta (v - S k) k^T;  o = S q / sqrt(dk),
  then RMSNorm per head * silu(z).

Sleep (the paper's offline recurrence) is `Model.window` applied N times: the residual stream
before the final norm of one pass is the input of the next, and the GDN states S carry over.
Every call of `window` starts with an empty attention cache and a zero conv state.
"""
from __future__ import annotations

import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgesleep.config import ModelArgs


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # written with a division so that onnxruntime fuses it into one SimplifiedLayerNormalization
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def l2_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(sum x^2 + eps): qwen35's GDN q/k norm, rms_norm(x, eps/n)/sqrt(n) as llama.cpp builds it, not
    ggml_l2_norm. Written as that rms_norm so that it fuses like the others."""
    n = x.shape[-1]
    return rms_norm(x, torch.full((n,), n ** -0.5, dtype=x.dtype, device=x.device), eps / n)


def rope(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """NeoX-style rotary embedding over the last dim; x (..., T, hd), pos (T,)."""
    half = x.shape[-1] // 2
    inv = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    ang = pos.to(torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    x1, x2 = x[..., :half], x[..., half:]
    return x * ang.cos() + torch.cat([-x2, x1], dim=-1) * ang.sin()


def rope_matrix(pos: torch.Tensor, dim: int, base: float) -> torch.Tensor:
    """R (dim, dim) with rope(x, pos) = x @ R for one position: one MatMul per rotated tensor in
    the wake graph, where the split-negate-concat form is six small nodes."""
    half = dim // 2
    ang = pos.to(torch.float32) * base ** (-torch.arange(half, dtype=torch.float32, device=pos.device) / half)
    cos, sin = torch.cat([ang, ang]).cos(), torch.cat([ang, ang]).sin()
    eye = torch.eye(dim, device=pos.device)
    rot = torch.cat([eye[half:], -eye[:half]])  # x @ rot = cat(-x2, x1)
    return eye * cos + rot * sin


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    """qwen35 gated full attention (attn_q holds [q_h, gate_h] per head)."""

    def __init__(self, a: ModelArgs):
        super().__init__()
        self.h, self.hd, self.base, self.scale = a.attn_heads, a.attn_head_dim, a.rope_base, a.rope_scale
        self.q = nn.Linear(a.d_model, 2 * self.h * self.hd, bias=False)
        self.k = nn.Linear(a.d_model, self.h * self.hd, bias=False)
        self.v = nn.Linear(a.d_model, self.h * self.hd, bias=False)
        self.o = nn.Linear(self.h * self.hd, a.d_model, bias=False)
        self.q_norm = RMSNorm(self.hd, a.norm_eps)
        self.k_norm = RMSNorm(self.hd, a.norm_eps)

    def _scaled(self, pos: torch.Tensor) -> torch.Tensor:
        # no Mul node in the graphs of unscaled models
        return pos if self.scale == 1.0 else pos * self.scale

    def _qkv(self, x: torch.Tensor, pos: torch.Tensor):
        """x (B, T, d) -> q, k, v (B, H, T, hd) with RoPE at `pos`, and gate (B, T, H*hd)."""
        B, T, _ = x.shape
        qg = self.q(x).view(B, T, self.h, 2 * self.hd)
        q, gate = qg[..., : self.hd], qg[..., self.hd:]
        k = self.k(x).view(B, T, self.h, self.hd)
        v = self.v(x).view(B, T, self.h, self.hd)
        q = rope(self.q_norm(q).transpose(1, 2), self._scaled(pos), self.base)
        k = rope(self.k_norm(k).transpose(1, 2), self._scaled(pos), self.base)
        return q, k, v.transpose(1, 2), gate.reshape(B, T, self.h * self.hd)

    def _out(self, att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = att.shape
        return self.o(att.transpose(1, 2).reshape(B, T, -1) * torch.sigmoid(gate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A whole window, causal, from an empty cache."""
        q, k, v, gate = self._qkv(x, torch.arange(x.shape[1], device=x.device))
        return self._out(F.scaled_dot_product_attention(q, k, v, is_causal=True), gate)

    def step(self, x: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor,
             v_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token at slot `pos` (1,) of an L-slot cache (H, L, hd), the wake step; x (1, d).
        Returns (y (1, d), k_cache, v_cache). No batch or time axes, like GatedDeltaNet.step."""
        H, hd = self.h, self.hd
        q, gate = self.q(x).view(H, 2 * hd).split(hd, dim=-1)
        R = rope_matrix(self._scaled(pos), hd, self.base)
        q = (self.q_norm(q) @ R)[:, None]  # (H, 1, hd)
        k = (self.k_norm(self.k(x).view(H, hd)) @ R)[:, None]
        slots = torch.arange(k_cache.shape[1], device=x.device)[:, None]  # (L, 1)
        k_cache = torch.where(slots == pos, k, k_cache)
        v_cache = torch.where(slots == pos, self.v(x).view(H, 1, hd), v_cache)
        hidden = torch.where(slots.T <= pos, 0.0, float("-inf"))  # (1, L)
        scores = q @ k_cache.transpose(-1, -2) / math.sqrt(hd) + hidden
        att = torch.softmax(scores, dim=-1) @ v_cache  # (H, 1, hd)
        return self.o(att.view(1, -1) * torch.sigmoid(gate.reshape(1, -1))), k_cache, v_cache


class GatedDeltaNet(nn.Module):
    """qwen35's GDN mixer. Its state S (H, dv, dk) per sequence is the fast weights."""

    def __init__(self, a: ModelArgs):
        super().__init__()
        self.h, self.dk, self.K, self.eps = a.gdn_heads, a.gdn_head_dim, a.conv_kernel, a.norm_eps
        self.C = 3 * self.h * self.dk
        self.qkv = nn.Linear(a.d_model, self.C, bias=False)
        self.gate = nn.Linear(a.d_model, self.h * self.dk, bias=False)  # z
        self.beta = nn.Linear(a.d_model, self.h, bias=False)
        self.alpha = nn.Linear(a.d_model, self.h, bias=False)
        self.dt_bias = nn.Parameter(torch.full((self.h,), -6.0))  # slow decay at init
        self.A_log = nn.Parameter(torch.zeros(self.h))
        self.conv = nn.Parameter(torch.randn(self.C, self.K) / math.sqrt(self.K))  # oldest tap first
        self.norm = RMSNorm(self.dk, a.norm_eps)
        self.out = nn.Linear(self.h * self.dk, a.d_model, bias=False)

    def _gates(self, x: torch.Tensor):
        """beta and the log forget gate g (both (B, T, H))."""
        beta = torch.sigmoid(self.beta(x))
        g = -torch.exp(self.A_log) * F.softplus(self.alpha(x) + self.dt_bias)
        return beta, g

    def _split(self, mixed: torch.Tensor):
        """Post-conv channels (B, T, C) -> q, k, v (B, H, T, dk) with q, k L2-normalised."""
        B, T, _ = mixed.shape
        q, k, v = mixed.view(B, T, 3, self.h, self.dk).permute(2, 0, 3, 1, 4)
        return l2_norm(q, self.eps), l2_norm(k, self.eps), v

    def _out(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = o.shape
        o = self.norm(o.transpose(1, 2)).reshape(B, T, -1)
        return self.out(o * F.silu(self.gate(x)))

    def forward(self, x: torch.Tensor, S: torch.Tensor, mask: torch.Tensor | None = None, rule=None):
        """A whole window from a zero conv state. S (B, H, dv, dk). mask (B, T): 0 = padding,
        which leaves S untouched. `rule` is the form of the delta rule to run (delta_rule_chunk
        by default). Returns (y, S)."""
        pre = F.pad(self.qkv(x).transpose(1, 2), (self.K - 1, 0))
        mixed = F.silu(F.conv1d(pre, self.conv[:, None, :], groups=self.C)).transpose(1, 2)
        q, k, v = self._split(mixed)
        beta, g = self._gates(x)
        if mask is not None:
            beta, g = beta * mask[..., None], g * mask[..., None]
        beta, g = beta.transpose(1, 2), g.transpose(1, 2)  # (B, H, T)
        o, S = (rule or delta_rule_chunk)(q, k, v, beta, g, S)
        return self._out(o / math.sqrt(self.dk), x), S

    def step(self, x: torch.Tensor, S: torch.Tensor,
             conv_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token, the wake step. x (1, d), S (H, dv, dk), conv_state (C, K-1) raw rows, oldest
        first. Returns (y (1, d), S, conv_state). Written without batch or time axes so that the
        exported graph has few nodes: at one token per call, onnxruntime's per-node overhead is
        most of the step's time."""
        H, dk = self.h, self.dk
        taps = torch.cat([conv_state, self.qkv(x).T], dim=1)  # (C, K)
        mixed = F.silu((taps * self.conv).sum(-1))
        q, k = l2_norm(mixed[: 2 * H * dk].view(2 * H, dk), self.eps).split(H)  # (H, dk) each
        v = mixed[2 * H * dk:].view(H, dk, 1)
        beta, g = self._gates(x)  # (1, H)
        S = S * g.exp().view(H, 1, 1)
        d = beta.view(H, 1, 1) * (v - S @ k[:, :, None])  # (H, dv, 1)
        S = S + d @ k[:, None, :]
        o = (S @ q[:, :, None]).view(H, dk) / math.sqrt(dk)
        y = self.out(self.norm(o).view(1, -1) * F.silu(self.gate(x)))
        return y, S, taps[:, 1:]


def delta_rule_loop(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g: torch.Tensor,
                    S0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule one position at a time, as llama.cpp's CPU kernel does it: the
    reference for the other forms. q, k, v (B, H, T, d); beta, g (B, H, T); S0 (B, H, dv, dk).
    Returns (S_t q_t for all t, S_T)."""
    def at(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.split(1, dim=2)  # T tensors (B, H, 1, ...)

    qs, ks, vs, krows = at(q[..., None]), at(k[..., None]), at(v[..., None]), at(k[..., None, :])
    decays, betas = at(g.exp()[..., None, None]), at(beta[..., None, None])
    S, outs = S0[:, :, None], []  # (B, H, 1, dv, dk)
    for t in range(q.shape[2]):
        S = S * decays[t]
        S = S + (betas[t] * (vs[t] - S @ ks[t])) @ krows[t]
        outs.append(S @ qs[t])
    return torch.cat(outs, dim=2)[..., 0], S[:, :, 0]


def delta_rule_chunk(q, k, v, beta, g, S0):
    """The same recurrence over a whole chunk at once (WY/UT form), for training.
    q, k, v (B, H, T, d); beta, g (B, H, T); S0 (B, H, dv, dk). Returns (S_t q_t for all t, S_T).

    With G_t = cumsum(g) and deltas d_t = beta_t (v_t - exp(g_t) S_{t-1} k_t):
      (I + A) D = beta V - beta exp(G) K S0^T,  A_ts = beta_t exp(G_t - G_s) k_t.k_s (s < t)
      O = exp(G) Q S0^T + (exp(G_t - G_s) q_t.k_s)_{s<=t} D
      S_T = exp(G_T) S0 + D^T (exp(G_T - G) K)
    """
    T = q.shape[2]
    G = torch.cumsum(g, dim=-1)
    diff = G[..., :, None] - G[..., None, :]
    lower = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    decay = torch.where(lower, diff, torch.full_like(diff, -torch.inf)).exp()  # (B, H, T, T)
    strict = decay.masked_fill(torch.eye(T, dtype=torch.bool, device=q.device), 0.0)
    A = beta[..., None] * strict * (k @ k.transpose(-1, -2))
    eye = torch.eye(T, dtype=q.dtype, device=q.device)
    rhs = beta[..., None] * (v - G.exp()[..., None] * (k @ S0.transpose(-1, -2)))
    D = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
    o = G.exp()[..., None] * (q @ S0.transpose(-1, -2)) + (decay * (q @ k.transpose(-1, -2))) @ D
    w = (G[..., -1:] - G).exp()[..., None] * k
    S = G[..., -1].exp()[..., None, None] * S0 + D.transpose(-1, -2) @ w
    return o, S


def delta_rule_blocks(q, k, v, beta, g, S0, size: int = 8):
    """delta_rule_chunk's WY form over blocks of `size` positions, in ops ONNX has: the sleep
    graph's form. Within a block, (I + A)^-1 is the finite Neumann series sum_j (-A)^j (A is
    strictly lower triangular, so A^size = 0), taken as prod_i (I + (-A)^(2^i)); blocks of 8 keep
    its terms small in float32. Everything but the state hand-off from block to block is computed
    for all blocks at once, so the graph has a few nodes per block instead of per position.
    Same arguments and result as delta_rule_chunk; blocks shrink to gcd(T, size)."""
    B, H, T, dk = k.shape
    C = math.gcd(T, size)
    n = T // C
    blk = lambda x: x.reshape(B, H, n, C, *x.shape[3:])  # noqa: E731
    q, k, v, beta, g = blk(q), blk(k), blk(v), blk(beta), blk(g)
    G = torch.cumsum(g, dim=-1)  # (B, H, n, C), per block
    lower = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    decay = torch.where(lower, G[..., :, None] - G[..., None, :], -torch.inf).exp()  # (B, H, n, C, C)
    strict = decay * (1 - torch.eye(C, device=q.device))
    N = -(beta[..., None] * strict * (k @ k.transpose(-1, -2)))
    inv, power = torch.eye(C, device=q.device) + N, N
    for _ in range(max(C - 1, 1).bit_length() - 1):
        power = power @ power
        inv = inv @ (torch.eye(C, device=q.device) + power)
    U = inv @ (beta[..., None] * v)  # deltas = U - W S^T, per block
    W = inv @ ((beta * G.exp())[..., None] * k)
    Qg = G.exp()[..., None] * q
    P = decay * (q @ k.transpose(-1, -2))
    Kd = ((G[..., -1:] - G).exp()[..., None] * k).transpose(-1, -2)  # (B, H, n, dk, C)
    end = G[..., -1].exp()[..., None, None]  # (B, H, n, 1, 1)
    # one split per operand up front (a Gather per block and operand otherwise)
    Us, Ws, Qs, Ps, Ks, ends = (x.split(1, dim=2) for x in (U, W, Qg, P, Kd, end))
    ST, outs = S0.transpose(-1, -2)[:, :, None], []  # carried as S^T (B, H, 1, dk, dv)
    for b in range(n):
        D = Us[b] - Ws[b] @ ST
        outs.append(Qs[b] @ ST + Ps[b] @ D)
        ST = ends[b] * ST + Ks[b] @ D
    return torch.cat(outs, dim=2).reshape(B, H, T, -1), ST[:, :, 0].transpose(-1, -2)


class MLP(nn.Module):
    def __init__(self, a: ModelArgs):
        super().__init__()
        self.gate = nn.Linear(a.d_model, a.ffn_dim, bias=False)
        self.up = nn.Linear(a.d_model, a.ffn_dim, bias=False)
        self.down = nn.Linear(a.ffn_dim, a.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, a: ModelArgs, kind: str):
        super().__init__()
        self.kind = kind
        self.attn_norm = RMSNorm(a.d_model, a.norm_eps)
        self.mixer = GatedDeltaNet(a) if kind == "gdn" else Attention(a)
        self.mlp_norm = RMSNorm(a.d_model, a.norm_eps)
        self.mlp = MLP(a)

    def ffn(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.mlp_norm(h))


class Model(nn.Module):
    def __init__(self, a: ModelArgs):
        super().__init__()
        self.args = a
        self.embed = nn.Embedding(a.vocab_size, a.d_model)
        self.blocks = nn.ModuleList([Block(a, kind) for kind in a.layer_types])
        self.norm = RMSNorm(a.d_model, a.norm_eps)
        nn.init.normal_(self.embed.weight, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith(("mixer.o.weight", "mixer.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * len(a.layer_types)))

    def empty_state(self, batch: int) -> list[torch.Tensor]:
        a = self.args
        device = self.embed.weight.device
        return [torch.zeros(batch, a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim, device=device) for _ in a.gdn_layers]

    def window(self, h: torch.Tensor, S: list[torch.Tensor], mask: torch.Tensor | None = None, rule=None):
        """One pass over a window. h (B, T, d): token embeddings for pass 1, the previous
        pass's output after. Returns (features before the final norm, new S per GDN layer)."""
        S, new = list(S), []
        for block in self.blocks:
            x = block.attn_norm(h)
            if block.kind == "gdn":
                y, s = block.mixer(x, S.pop(0), mask, rule)
                new.append(s)
            else:
                y = block.mixer(x)
            h = block.ffn(h + y)
        return h, new

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h) @ self.embed.weight.T

    def sleep(self, tokens: torch.Tensor, S: list[torch.Tensor], passes: int,
              mask: torch.Tensor | None = None, rule=None, trace: list | None = None):
        """Consolidate one window: N passes, S carried over, features fed back. Returns
        (last features, S). `trace`: a list to append each pass's features to."""
        h = self.embed(tokens)
        for _ in range(passes):
            h, S = self.window(h, S, mask, rule)
            if trace is not None:
                trace.append(h)
        return h, S

"""Export a model as a GGUF file for llama.cpp's `qwen35` architecture.

    export_gguf(model, Path("models/x/model.gguf"), vocab_size)            # f32
    export_gguf(model, Path("models/x/model.q8_0.gguf"), vocab_size, "q8_0")

Checked against the llama.cpp in llama-cpp-python 0.3.36 (tests/test_gguf.py runs both). The
mapping is one to one; no weight is
changed except A_log (llama.cpp stores ssm_a = -exp(A_log)):

  ours (export/model.py)                   GGUF tensor                 ggml shape {ne0, ne1}
  embed.weight (V, d)                      token_embd.weight           {d, V} (output tied)
  norm.weight                              output_norm.weight          {d}
  blocks.i.attn_norm.weight                blk.i.attn_norm.weight      {d}
  blocks.i.mlp_norm.weight                 blk.i.post_attention_norm   {d}
  blocks.i.mlp.{gate,up,down}.weight       blk.i.ffn_{gate,up,down}    {d, F} / {F, d}
  attention layer:
  mixer.q.weight (2*H*hd, d), [q_h|gate_h] blk.i.attn_q.weight         {d, 2*H*hd}
  mixer.k / mixer.v / mixer.o              blk.i.attn_k / attn_v / attn_output
  mixer.q_norm / mixer.k_norm              blk.i.attn_q_norm / attn_k_norm  {hd}
  GDN layer:
  mixer.qkv.weight (3*H*dk, d), [q|k|v]    blk.i.attn_qkv.weight       {d, C}
  mixer.gate.weight (z)                    blk.i.attn_gate.weight      {d, H*dv}
  mixer.conv (C, K), oldest tap first      blk.i.ssm_conv1d.weight     {K, C}
  mixer.dt_bias                            blk.i.ssm_dt.bias           {H}
  -exp(mixer.A_log)                        blk.i.ssm_a                 {H}
  mixer.beta / mixer.alpha                 blk.i.ssm_beta / ssm_alpha  {d, H}
  mixer.norm.weight                        blk.i.ssm_norm.weight       {dv}
  mixer.out.weight                         blk.i.ssm_out.weight        {H*dv, d}

Norm weights are written as is: llama.cpp multiplies by the stored weight, as our RMSNorm does
(the HF converter's +1 is for HF's zero-centred norms only).

RoPE: qwen35 always uses IMROPE (interleaved M-RoPE) via ggml_rope_multi. For text tokens
llama.cpp feeds the positions (p, p, p, 0); a rotary pair i takes the position of section
"t", "h", "w" or "e" by `i % sum(sections)`, and pairs that fall to "e" would be rotated by
position 0. With sections [s, s, s, 0] every pair maps to t/h/w, so every pair rotates by p
with theta_i = p * base^(-2i/hd) over the whole head: exactly our NeoX rope. A model's
rope_scale s becomes linear scaling with factor 1/s (theta_i = s * p * base^(-2i/hd)).

The vocabulary is a placeholder (tokenizer.ggml.model = "none" plus `qwen35.vocab_size`): token
ids come from our own `tokenizers` file and are handed to llama.cpp as ids.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from export.model import Model

ARCH = "qwen35"
QUANTS = ("f32", "f16", "q8_0")


def _rope_sections(hd: int) -> list[int]:
    """Sections that give every rotary pair the text position (see the module docstring)."""
    s = max(1, (hd // 2) // 3)
    return [s, s, s, 0]


def check_mappable(model: Model) -> None:
    """Raise ValueError for a configuration qwen35 cannot express."""
    a = model.args
    if any(t not in ("attention", "gdn") for t in a.layer_types):
        raise ValueError(f"unknown layer type in {a.layer_types}")
    if a.attn_head_dim % 2 or a.attn_head_dim < 4:
        # ggml rope: even n_dims; mrope asserts sum(sections) <= head dim
        raise ValueError(f"qwen35 rope needs an even attention head dim >= 4, got {a.attn_head_dim}")


def tensors(model: Model) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array in numpy order (the reverse of ggml's {ne0, ne1})."""
    a = model.args
    sd = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["embed.weight"], "output_norm.weight": sd["norm.weight"]}
    for i, kind in enumerate(a.layer_types):
        p, b = f"blocks.{i}.", f"blk.{i}."
        out[b + "attn_norm.weight"] = sd[p + "attn_norm.weight"]
        out[b + "post_attention_norm.weight"] = sd[p + "mlp_norm.weight"]
        for ours, theirs in (("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
            out[b + theirs + ".weight"] = sd[p + f"mlp.{ours}.weight"]
        m = p + "mixer."
        if kind == "attention":
            for ours, theirs in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
                                 ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm")):
                out[b + theirs + ".weight"] = sd[m + ours + ".weight"]
        else:
            out[b + "attn_qkv.weight"] = sd[m + "qkv.weight"]
            out[b + "attn_gate.weight"] = sd[m + "gate.weight"]
            out[b + "ssm_conv1d.weight"] = sd[m + "conv"]
            out[b + "ssm_dt.bias"] = sd[m + "dt_bias"]
            out[b + "ssm_a"] = -np.exp(sd[m + "A_log"])
            out[b + "ssm_beta.weight"] = sd[m + "beta.weight"]
            out[b + "ssm_alpha.weight"] = sd[m + "alpha.weight"]
            out[b + "ssm_norm.weight"] = sd[m + "norm.weight"]
            out[b + "ssm_out.weight"] = sd[m + "out.weight"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# Large matmul weights that may be stored quantised. Everything else (norms, conv taps, gates,
# dt/A, the small beta/alpha projections) stays f32.
_QUANTISABLE = ("token_embd.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                "attn_qkv.weight", "attn_gate.weight", "ssm_out.weight", "ffn_gate.weight", "ffn_up.weight",
                "ffn_down.weight")


def export_gguf(model: Model, path: Path, vocab_size: int, quant: str = "f32") -> Path:
    """Write `model` as a qwen35 GGUF at `path` (quant: f32, f16 or q8_0)."""
    import gguf  # the `gguf` package (gguf-py); imported here so that ONNX-only installs work

    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {QUANTS}, got {quant!r}")
    check_mappable(model)
    a = model.args
    if vocab_size != a.vocab_size:
        raise ValueError(f"vocab_size {vocab_size} != the model's {a.vocab_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")

    w = gguf.GGUFWriter(str(tmp), ARCH)
    w.add_name("edgesleep")
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])
    w.add_context_length(max(a.window, 1))
    w.add_embedding_length(a.d_model)
    w.add_block_count(len(a.layer_types))
    w.add_feed_forward_length(a.ffn_dim)
    w.add_head_count(a.attn_heads)
    w.add_head_count_kv(a.attn_heads)
    w.add_key_length(a.attn_head_dim)
    w.add_value_length(a.attn_head_dim)
    w.add_layer_norm_rms_eps(float(a.norm_eps))
    w.add_rope_freq_base(float(a.rope_base))
    w.add_rope_dimension_count(a.attn_head_dim)
    if a.rope_scale != 1.0:  # llama.cpp's linear scaling multiplies positions by 1/factor
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(1.0 / a.rope_scale)
    w.add_array(f"{ARCH}.rope.dimension_sections", _rope_sections(a.attn_head_dim))
    w.add_ssm_conv_kernel(a.conv_kernel)
    w.add_ssm_state_size(a.gdn_head_dim)
    w.add_ssm_group_count(a.gdn_heads)  # Hk = Hv: no head tiling
    w.add_ssm_time_step_rank(a.gdn_heads)
    w.add_ssm_inner_size(a.gdn_heads * a.gdn_head_dim)
    w.add_array(f"{ARCH}.attention.recurrent_layers", [t == "gdn" for t in a.layer_types])
    w.add_vocab_size(vocab_size)
    w.add_tokenizer_model("none")

    for name, arr in tensors(model).items():
        if quant != "f32" and name.endswith(_QUANTISABLE) and arr.ndim == 2:
            if quant == "f16":
                w.add_tensor(name, arr.astype(np.float16))
                continue
            qt = gguf.GGMLQuantizationType.Q8_0
            block = gguf.GGML_QUANT_SIZES[qt][0]
            if arr.shape[-1] % block == 0:
                w.add_tensor(name, gguf.quants.quantize(arr, qt), raw_dtype=qt)
                continue
        w.add_tensor(name, arr)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def main() -> None:
    from safetensors.torch import load_file

    from edgesleep.config import Config

    ap = argparse.ArgumentParser(description="write model.gguf (and model.q8_0.gguf) into a model directory")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--quant", choices=QUANTS, action="append")
    args = ap.parse_args()
    config = Config.load(args.model_dir)
    model = Model(config.args)
    model.load_state_dict(load_file(str(args.model_dir / "weights.safetensors")))
    for q in args.quant or ["f32"]:
        name = "model.gguf" if q == "f32" else f"model.{q}.gguf"
        print(export_gguf(model.eval(), args.model_dir / name, config.args.vocab_size, q))


if __name__ == "__main__":
    main()

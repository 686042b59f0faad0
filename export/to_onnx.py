"""Export the two ONNX graphs of a model directory.

- `model.onnx`, the wake step: one token at slot `pos` of the window.
    token (1,), pos (1,), S.<i> (H, dv, dk), conv.<i> (C, K-1), k.<j>/v.<j> (H, L, hd)
    -> logits (V,) and the same states suffixed `.new`.
- `sleep.onnx`, one sleep pass over a whole window (slots with mask 0 are padding):
    h (L, d), mask (L,), S.<i> -> h.new (L, d), S.<i>.new

i indexes GDN layers and j attention layers by their position in the stack. The fast weights
S and everything else that outlives one call stay outside the graphs.
"""
from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from edgesleep.backends.onnx import WEIGHTS_DATA
from export.model import Model, delta_rule_blocks


def state_names(model: Model) -> list[str]:
    a = model.args
    names = []
    for i in range(len(a.layer_types)):
        names += [f"S.{i}", f"conv.{i}"] if i in a.gdn_layers else [f"k.{i}", f"v.{i}"]
    return names


class WakeStep(nn.Module):
    def __init__(self, model: Model):
        super().__init__()
        self.m = model

    def forward(self, token, pos, *states):
        m, states, new = self.m, list(states), []
        h = m.embed(token)  # (1, d)
        for block in m.blocks:
            a, b = states.pop(0), states.pop(0)
            x = block.attn_norm(h)
            if block.kind == "gdn":
                y, a, b = block.mixer.step(x, a, b)
            else:
                y, a, b = block.mixer.step(x, pos, a, b)
            new += [a, b]
            h = block.ffn(h + y)
        return (m.logits(h)[0], *new)


class SleepPass(nn.Module):
    def __init__(self, model: Model):
        super().__init__()
        self.m = model

    def forward(self, h, mask, *S):
        h, S = self.m.window(h[None], [s[None] for s in S], mask[None], rule=delta_rule_blocks)
        return (h[0], *[s[0] for s in S])


def example_states(model: Model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Zero wake states and zero fast weights of the right shapes."""
    a = model.args
    wake = []
    for i in range(len(a.layer_types)):
        if i in a.gdn_layers:
            wake += [torch.zeros(a.gdn_heads, a.gdn_head_dim, a.gdn_head_dim),
                     torch.zeros(a.conv_channels, a.conv_kernel - 1)]
        else:
            # two distinct tensors: the exporter would merge one object passed twice into one input
            wake += [torch.zeros(a.attn_heads, a.window, a.attn_head_dim) for _ in "kv"]
    return wake, [s[0] for s in model.empty_state(1)]


def export_onnx(model: Model, out_dir: Path) -> None:
    model.eval()
    a = model.args
    wake_states, S = example_states(model)
    names = state_names(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            WakeStep(model), (torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), *wake_states),
            str(out_dir / "model.onnx"), input_names=["token", "pos", *names],
            output_names=["logits", *[n + ".new" for n in names]], dynamo=True,
            external_data=False, verbose=False)
        s_names = [f"S.{i}" for i in a.gdn_layers]
        torch.onnx.export(
            SleepPass(model), (torch.zeros(a.window, a.d_model), torch.ones(a.window), *S),
            str(out_dir / "sleep.onnx"), input_names=["h", "mask", *s_names],
            output_names=["h.new", *[n + ".new" for n in s_names]], dynamo=True,
            external_data=False, verbose=False)
    share_weights(out_dir, ["model.onnx", "sleep.onnx"])


def linears_as_matmuls(m: onnx.ModelProto) -> None:
    """Rewrite each Gemm(x, W, transB=1) the exporter writes for a Linear on a (1, d) row (the
    wake step) as MatMul(x, W^T), the form it gives a Linear on a (1, T, d) window (the sleep
    pass). The two graphs' weights then hash equal and are stored once, and onnxruntime can fuse
    the residual Add that follows into the product (MatMul + Add -> Gemm), one node fewer each."""
    uses = defaultdict(list)
    for node in m.graph.node:
        for name in node.input:
            uses[name].append(node)

    def plain_linear(n: onnx.NodeProto, w: str) -> bool:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        return (n.op_type == "Gemm" and list(n.input[1:]) == [w] and attrs.get("transB") == 1
                and not attrs.get("transA") and attrs.get("alpha", 1.0) == 1.0)

    moved = set()
    for t in m.graph.initializer:  # the graphs have no subgraphs (If/Loop) to look into
        nodes = uses[t.name]
        if not nodes or not all(plain_linear(n, t.name) for n in nodes):
            continue
        t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(t).T), t.name))
        moved.add(t.name)
        for n in nodes:
            n.op_type = "MatMul"
            del n.attribute[:]
    # the exporter's recorded shapes of the transposed weights are stale now: drop them
    kept = [v for v in m.graph.value_info if v.name not in moved]
    del m.graph.value_info[:]
    m.graph.value_info.extend(kept)


def share_weights(out_dir: Path, graphs: list[str]) -> None:
    """Store each weight once for both graphs, in one external data file, and drop the
    exporter's per-node debug metadata (stack traces with local paths). The wake step and the
    sleep pass use the same tensors, so this halves a model folder's ONNX bytes."""
    blob, where = bytearray(), {}
    models = {g: onnx.load(str(out_dir / g)) for g in graphs}
    for m in models.values():
        linears_as_matmuls(m)
        for node in m.graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
        for t in m.graph.initializer:
            if len(t.raw_data) < 1024:  # small constants stay inline
                continue
            key = hashlib.sha256(t.raw_data).digest()
            if key not in where:
                blob += b"\0" * (-len(blob) % 64)  # aligned, so onnxruntime can map it
                where[key] = len(blob)
                blob += t.raw_data
            set_external_data(t, WEIGHTS_DATA, offset=where[key], length=len(t.raw_data))
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
    (out_dir / WEIGHTS_DATA).write_bytes(bytes(blob))
    for g, m in models.items():
        onnx.save(m, str(out_dir / g))


def main() -> None:
    import argparse

    from safetensors.torch import load_file

    from edgesleep.config import Config

    ap = argparse.ArgumentParser(description="re-export model.onnx and sleep.onnx of a model directory "
                                             "from its weights.safetensors (e.g. after an exporter change)")
    ap.add_argument("model_dirs", type=Path, nargs="+")
    for d in ap.parse_args().model_dirs:
        model = Model(Config.load(d).args)
        model.load_state_dict(load_file(str(d / "weights.safetensors")))
        export_onnx(model, d)
        print(f"{d}: model.onnx, sleep.onnx, {WEIGHTS_DATA}")


if __name__ == "__main__":
    main()

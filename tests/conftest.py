from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgesleep.config import ModelArgs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # export/ is a top-level folder of the repository, not installed

SHIPPED = ROOT / "models"

if TYPE_CHECKING:
    from export.model import Model  # needs torch, which only the tests that use it import


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny random facts model exported to ONNX and GGUF: (torch model, model directory)."""
    pytest.importorskip("torch")
    from edgesleep.tasks import facts
    from export.build import write_model_dir

    args = ModelArgs(vocab_size=len(facts.VOCAB) + 2, d_model=32, attn_heads=2, attn_head_dim=16,
                     gdn_heads=2, gdn_head_dim=16, ffn_dim=64, window=8)
    model = scaled_random_model(args, seed=0)
    out = tmp_path_factory.mktemp("tiny") / "facts-tiny"
    write_model_dir(model, out, "facts", [1, 2], {"note": "random weights for tests"})
    return model, out


def scaled_random_model(args: ModelArgs, seed: int) -> Model:
    """A random torch model (export/model.py) in eval mode, with weights scaled up from the
    training init so that activations are far from zero and a parity test can fail."""
    import torch

    from export.model import Model

    torch.manual_seed(seed)
    model = Model(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
            elif name.endswith("dt_bias"):
                p.uniform_(-3, 0)  # decays strong enough to matter
    return model.eval()

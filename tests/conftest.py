import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # export/ is a top-level folder of the repository, not installed

SHIPPED = ROOT / "models"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny random facts model exported to ONNX: (torch model, model directory).
    Weights are scaled up from the training init so that activations are far from zero and a
    parity test can fail."""
    torch = pytest.importorskip("torch")
    from edgesleep.config import ModelArgs
    from edgesleep.tasks import facts
    from export.build import write_model_dir
    from export.model import Model

    torch.manual_seed(0)
    args = ModelArgs(vocab_size=len(facts.VOCAB) + 2, d_model=32, attn_heads=2, attn_head_dim=16,
                     gdn_heads=2, gdn_head_dim=16, ffn_dim=64, window=8)
    model = Model(args)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
            elif name.endswith("dt_bias"):
                p.uniform_(-3, 0)  # decays strong enough to matter
    out = tmp_path_factory.mktemp("tiny") / "facts-tiny"
    write_model_dir(model, out, "facts", [1, 2], {"note": "random weights for tests"})
    return model.eval(), out

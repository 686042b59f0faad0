from __future__ import annotations

import functools
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgesleep.config import ModelArgs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # export/, benchmarks/ and research/ are folders of the repository, not installed

SHIPPED = ROOT / "models"
FIXTURES = ROOT / "tests" / "fixtures"  # tiny model directories, committed: `python tests/fixtures/build.py`

if TYPE_CHECKING:
    from export.model import Model  # needs torch, which only the tests that use it import


def tiny_args(anchored: bool = False) -> ModelArgs:
    """The dims of the test models. `anchored`: their windows open with <w> and their RoPE
    positions are scaled by pi, as depo's."""
    from edgesleep.tasks import facts
    from edgesleep.tokenizer import Tokenizer

    tok = Tokenizer.from_words(facts.VOCAB, window_token=anchored)
    return ModelArgs(vocab_size=len(tok), d_model=32, attn_heads=2, attn_head_dim=16, gdn_heads=2,
                     gdn_head_dim=16, ffn_dim=64, window=8, window_token=tok.window_id,
                     rope_scale=math.pi if anchored else 1.0)


FIXTURE_SEEDS = {"tiny": 0, "anchored": 2}


def build_fixture(name: str, out: Path) -> Path:
    """A tiny random facts model directory (torch): the committed fixture `name` is this."""
    from export.build import write_model_dir

    model = scaled_random_model(tiny_args(name == "anchored"), seed=FIXTURE_SEEDS[name])
    write_model_dir(model, out, "facts", [1, 2], {"note": "random weights for tests"})
    return out


class TinyModel:
    """A committed tiny model directory, copied for a test session, and its torch model (loaded
    on first use; the tests that ask for it need torch)."""

    def __init__(self, path: Path):
        self.path = path

    @functools.cached_property
    def model(self) -> Model:
        pytest.importorskip("torch")
        from safetensors.torch import load_file

        from edgesleep.config import Config
        from export.model import Model

        model = Model(Config.load(self.path).args)
        model.load_state_dict(load_file(str(self.path / "weights.safetensors")))
        return model.eval()


def _fixture(tmp_path_factory, name: str) -> TinyModel:
    out = tmp_path_factory.mktemp(name) / f"facts-{name}"
    shutil.copytree(FIXTURES / name, out)
    return TinyModel(out)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyModel:
    return _fixture(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def anchored(tmp_path_factory) -> TinyModel:
    return _fixture(tmp_path_factory, "anchored")


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


def torch_reference(model: Model, ids: list[int], question_ids: list[int], passes: int):
    """The reference semantics in torch: hard eviction every window, N passes per window (the
    last, partial one included), then the question as one ordinary pass from S. With a window
    token, it opens every window (of L - 1 fed tokens) and the question's. Returns the
    question's logits at every position, S after the context and S after the question (numpy)."""
    import torch

    a = model.args
    opener, L = [] if a.window_token is None else [a.window_token], a.window_text
    S = model.empty_state(1)
    with torch.no_grad():
        for i in range(0, len(ids), L):
            _, S = model.sleep(torch.tensor([opener + ids[i:i + L]]), S, passes)
        h, S_after = model.window(model.embed(torch.tensor([opener + question_ids])), S)
        return (model.logits(h)[0].numpy(), [s[0].numpy() for s in S], [s[0].numpy() for s in S_after])

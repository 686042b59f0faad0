"""A model directory's config.json: the architecture, the window, the task, how it was trained."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

FORMAT_VERSION = 1


@dataclass
class ModelArgs:
    """Sizes of the hybrid. Shared by the torch model (export/) and the runtime."""

    vocab_size: int
    d_model: int = 128
    layer_types: list[str] = field(default_factory=lambda: ["attention", "gdn", "attention", "gdn"])
    attn_heads: int = 4
    attn_head_dim: int = 32
    rope_base: float = 10000.0
    # positions are multiplied by this before RoPE (llama.cpp's freq_scale). pi turns the fastest
    # rotary pair by half a turn per token, so attention can see a position's parity relative to
    # an anchor (depo's edges are token pairs)
    rope_scale: float = 1.0
    gdn_heads: int = 2
    gdn_head_dim: int = 64  # dk = dv, as qwen35 requires
    conv_kernel: int = 4
    ffn_dim: int = 256
    norm_eps: float = 1e-6
    window: int = 64  # L: the attention cache holds at most this many tokens
    # a token id the runtime writes in slot 0 of every window, before the text (None: no such
    # token). It anchors absolute position, which RoPE alone does not give
    window_token: int | None = None

    @property
    def window_text(self) -> int:
        """How many fed tokens one window holds."""
        return self.window - (self.window_token is not None)

    @property
    def gdn_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "gdn"]

    @property
    def attn_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "attention"]

    @property
    def conv_channels(self) -> int:
        return 3 * self.gdn_heads * self.gdn_head_dim

    @classmethod
    def from_dict(cls, d: dict) -> "ModelArgs":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Config:
    args: ModelArgs
    task: dict  # {"name": "facts", ...task parameters such as "steps" for rule110}
    passes: list[int]  # the sleep depths it was trained with
    train: dict = field(default_factory=dict)
    # A model that ships as memory layers over a pretrained base: where the base's GGUF is
    # installed ({"package", "file", "install"}), where the memory layers sit ({"before": [...],
    # "heads", "head_dim", "conv_kernel"}), and what a sleep pass reads ("reread": the window's
    # tokens again, S carried over). The runtime assembles its graphs on first open.
    base: dict | None = None
    memory_layers: dict | None = None
    sleep: str = "features"  # "features": pass n+1 reads pass n's features, as the paper's

    @property
    def window(self) -> int:
        return self.args.window

    @property
    def deep_passes(self) -> int:
        """The deepest sleep it was trained for: the default N of a deep sleep (a rule110 model steps
        the automaton a few cells a pass, so fewer passes answer a smaller t than the task's)."""
        return max(self.passes)

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, "architecture": "edgesleep-qwen35",
                           **asdict(self.args), "task": self.task, "passes": self.passes,
                           "train": self.train}, indent=1)

    @classmethod
    def load(cls, model_dir: str | Path) -> "Config":
        path = Path(model_dir) / "config.json"
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{model_dir} is not a model directory (no config.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is corrupt: {e}") from None
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{path} has format {d['format_version']}; this edgesleep reads up to "
                             f"{FORMAT_VERSION}: upgrade edgesleep")
        try:
            config = cls(ModelArgs.from_dict(d), d["task"], d["passes"], d.get("train", {}),
                         d.get("base"), d.get("memory_layers"), d.get("sleep", "features"))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} is incomplete or malformed ({e!r})") from None
        if config.sleep not in ("features", "reread") or (config.base is None) != (config.memory_layers is None):
            raise ValueError(f"{path}: sleep must be features or reread, and base and memory_layers come together")
        return config

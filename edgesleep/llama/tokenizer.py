"""The tokenizer of a GPT-2-style GGUF (tokenizer.ggml.model = "gpt2"), built from the file alone.

The vocabulary, merges and token types in the GGUF make a byte-level BPE `tokenizers.Tokenizer`;
control tokens (type 3, e.g. <|im_start|>) are special tokens, matched whole in the text as
llama.cpp does when it tokenizes with special=True. The pre-tokenizer is the one llama.cpp uses
for the file's tokenizer.ggml.pre ("smollm", like "starcoder"): every digit on its own, then
GPT-2's split.

    tok = GGUFTokenizer.from_gguf(weights)
    ids = tok.encode(tok.chat("What is 2 + 2?"))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from edgesleep.llama.gguf_weights import GGUFWeights

CONTROL = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL
USER_DEFINED = 4
# pre-tokenizers (tokenizer.ggml.pre) whose split is digits one by one, then GPT-2's regex
DIGITS_THEN_GPT2 = {"smollm", "starcoder", "refact", "codeshell", "minerva"}


@dataclass
class ChatML:
    """The chat template in the GGUF, for its one form: ChatML with a default system prompt."""

    system: str | None  # the default system prompt, used when the messages have none

    @classmethod
    def from_template(cls, template: str) -> "ChatML":
        if "<|im_start|>" not in template:
            raise ValueError("the GGUF's chat template is not ChatML")
        m = re.search(r"'<\|im_start\|>system\n(.*?)<\|im_end\|>\n'", template, re.S)
        return cls(m.group(1) if m else None)

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if messages and messages[0]["role"] != "system" and self.system is not None:
            messages = [{"role": "system", "content": self.system}, *messages]
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


class GGUFTokenizer:
    def __init__(self, hf: Tokenizer, chat_template: ChatML | None, eos_id: int, bos_id: int | None):
        self.hf, self.template, self.eos_id, self.bos_id = hf, chat_template, eos_id, bos_id

    @classmethod
    def from_gguf(cls, w: GGUFWeights) -> "GGUFTokenizer":
        model = w.field("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"tokenizer.ggml.model is {model!r}; only gpt2 (byte-level BPE) is built")
        pre = w.field("tokenizer.ggml.pre", "default")
        if pre not in DIGITS_THEN_GPT2:
            raise ValueError(f"no pre-tokenizer for tokenizer.ggml.pre = {pre!r}")
        tokens = w.field("tokenizer.ggml.tokens")
        types = w.field("tokenizer.ggml.token_type")
        merges = [tuple(m.split(" ", 1)) for m in w.field("tokenizer.ggml.merges")]
        hf = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                  fuse_unk=False, byte_fallback=False))
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        hf.decoder = decoders.ByteLevel()
        hf.add_special_tokens([AddedToken(t, special=True, normalized=False)
                               for t, k in zip(tokens, types) if k in (CONTROL, USER_DEFINED)])
        template = w.field("tokenizer.chat_template")
        add_bos = w.field("tokenizer.ggml.add_bos_token", False)
        return cls(hf, ChatML.from_template(template) if template else None,
                   w.field("tokenizer.ggml.eos_token_id"),
                   w.field("tokenizer.ggml.bos_token_id") if add_bos else None)

    def __len__(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, control tokens written in it included (llama.cpp's special=True)."""
        ids = self.hf.encode(text, add_special_tokens=False).ids
        return ids if self.bos_id is None else [self.bos_id, *ids]

    def decode(self, ids: list[int], skip_special: bool = False) -> str:
        return self.hf.decode(ids, skip_special_tokens=skip_special)

    def chat(self, question: str, system: str | None = None) -> str:
        """The prompt of one user turn, with the template's default system prompt unless given."""
        messages = ([{"role": "system", "content": system}] if system is not None else []) + \
            [{"role": "user", "content": question}]
        return self.template.render(messages)

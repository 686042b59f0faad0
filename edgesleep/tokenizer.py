"""Tokenizers: word-level over a task's vocabulary (the task contract: split on whitespace only),
or a pretrained base's byte-level BPE, both as `tokenizers` files."""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

SPECIALS = ["<pad>", "<unk>"]
WINDOW = "<w>"  # opens every window of the models that use one (ModelArgs.window_token)


class Tokenizer:
    """Thin wrapper over a `tokenizers` model: text <-> ids. `words` (word-level only) spells each
    id; a BPE tokenizer's text comes from `decode`."""

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.vocab = hf.get_vocab()
        self.is_words = isinstance(hf.model, WordLevel)
        self.words = {i: w for w, i in self.vocab.items()} if self.is_words else {}
        self.pad_id, self.unk_id = self.vocab.get("<pad>"), self.vocab.get("<unk>")
        self.window_id = self.vocab.get(WINDOW) if self.is_words else None
        # never a greedy answer: padding, unknown and the window opener (a BPE model's control
        # tokens stay: its end of turn is how an answer ends)
        self.special_ids = ([self.vocab[s] for s in SPECIALS if s in self.vocab] + (
            [self.window_id] if self.window_id is not None else [])) if self.is_words else []

    @classmethod
    def from_words(cls, words: list[str], window_token: bool = False) -> "Tokenizer":
        """The specials, then `words`; then `<w>` if asked, last so that the other ids do not
        depend on it (a warm start adds one embedding row)."""
        words = SPECIALS + [w for w in words if w not in SPECIALS] + ([WINDOW] if window_token else [])
        vocab = {w: i for i, w in enumerate(words)}
        hf = HFTokenizer(WordLevel(vocab, unk_token="<unk>"))
        hf.pre_tokenizer = WhitespaceSplit()
        return cls(hf)

    @classmethod
    def from_file(cls, path: str | Path) -> "Tokenizer":
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing")
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises its own exception type for a bad file
            raise ValueError(f"{path} is not a valid tokenizer: {e}") from None

    def save(self, path: str | Path) -> None:
        self.hf.save(str(path))

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids) if self.is_words else self.hf.decode(ids, skip_special_tokens=False)

    def token_text(self, token: int) -> str:
        """One token as text: its word, or its bytes decoded."""
        return self.words[token] if self.is_words else self.hf.decode([token], skip_special_tokens=False)

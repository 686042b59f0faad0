"""Word-level tokenizers over a task's vocabulary (the task contract: split on whitespace only)."""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

SPECIALS = ["<pad>", "<unk>"]
WINDOW = "<w>"  # opens every window of the models that use one (ModelArgs.window_token)


class Tokenizer:
    """Thin wrapper over a `tokenizers` word-level model: text <-> ids."""

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.vocab = hf.get_vocab()
        self.words = {i: w for w, i in self.vocab.items()}
        self.pad_id = self.vocab["<pad>"]
        self.unk_id = self.vocab["<unk>"]
        self.window_id = self.vocab.get(WINDOW)
        self.special_ids = [self.vocab[s] for s in SPECIALS] + ([self.window_id] if self.window_id is not None else [])

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
        return " ".join(self.words[i] for i in ids)

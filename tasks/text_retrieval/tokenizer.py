"""A word-level tokenizer whose vocabulary is built from the training captions and saved to the run folder.

The text encoder is trained from scratch, so nothing pretrained is needed on the text side: a vocabulary of
the training captions' words (lower-cased, punctuation dropped) covers the descriptions' small domain
(colours, garments, accessories). Words seen fewer than ``min_freq`` times map to ``<unk>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from saip_bench.errors import ConfigError
from saip_bench.io import atomic_write_json
from saip_bench.tasks.text_retrieval.data.common import caption_tokens

PAD, UNK, SOS, EOS = "<pad>", "<unk>", "<sos>", "<eos>"
SPECIALS = (PAD, UNK, SOS, EOS)


class WordTokenizer:
    """Maps captions to fixed-length id tensors: ``<sos> words... <eos>`` then ``<pad>`` (id 0)."""

    def __init__(self, vocab: list[str], *, max_len: int = 77) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        if max_len < 3:
            raise ValueError(f"max_len must be at least 3, got {max_len}")
        self.vocab = list(vocab)
        self.max_len = int(max_len)
        self.index = {word: i for i, word in enumerate(self.vocab)}

    @classmethod
    def build(cls, captions: Iterable[str], *, min_freq: int = 1, max_len: int = 77) -> WordTokenizer:
        """A vocabulary of every word seen at least ``min_freq`` times, most frequent first (ties sorted)."""
        counts = Counter(token for caption in captions for token in caption_tokens(caption))
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *words], max_len=max_len)

    @property
    def pad_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, caption: str) -> list[int]:
        """Token ids of one caption, truncated to ``max_len`` (``<eos>`` kept), without padding."""
        unk = self.index[UNK]
        ids = [self.index.get(token, unk) for token in caption_tokens(caption)][: self.max_len - 2]
        return [self.index[SOS], *ids, self.index[EOS]]

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """A ``(N, max_len)`` long tensor of padded token ids."""
        out = torch.zeros(len(captions), self.max_len, dtype=torch.long)
        for row, caption in enumerate(captions):
            ids = self.encode(caption)
            out[row, : len(ids)] = torch.as_tensor(ids)
        return out

    def save(self, path: str | Path) -> None:
        """Write the vocabulary and ``max_len`` as JSON (atomically)."""
        atomic_write_json(Path(path), {"kind": "word", "max_len": self.max_len, "vocab": self.vocab})

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read what :meth:`save` wrote; a bad file is a ConfigError naming it."""
        import json

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(list(data["vocab"]), max_len=int(data["max_len"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: not a saved word tokenizer ({type(err).__name__}: {err})") from None

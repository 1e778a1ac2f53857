"""The text side of retrieval: a compact Transformer trained from scratch, or a local Hugging Face model.

IRRA uses CLIP's pretrained text Transformer; this benchmark measures the *image* backbone, so the text side
is the same small, offline, from-scratch model for every backbone (a local Hugging Face model directory can
replace it through the recipe key ``text_encoder: PATH``; it is never downloaded).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from saip_bench.errors import ConfigError


class TransformerTextEncoder(nn.Module):
    """Token embedding + learned positions + pre-norm Transformer blocks + masked mean pooling.

    Mean pooling over the real tokens (not the ``<sos>`` token alone) gives a useful sentence vector
    from the first steps of training, which matters for short budgets.

    Args:
        vocab_size: tokenizer vocabulary size (id 0 is padding).
        max_len: longest token sequence.
        width: embedding width (the output dimension).
        depth: number of Transformer blocks.
        heads: attention heads.
        dropout: dropout inside the blocks.
    """

    def __init__(
        self, vocab_size: int, *, max_len: int = 77, width: int = 256, depth: int = 2, heads: int = 4,
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed_dim = width
        self.token = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, max_len, width))
        nn.init.normal_(self.token.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.01)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids (0 = padding) -> ``(B, width)`` sentence features."""
        mask = tokens != 0
        x = self.token(tokens) + self.pos[:, : tokens.shape[1]]
        x = self.norm(self.blocks(x, src_key_padding_mask=~mask))
        weights = mask.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class HFTextEncoder(nn.Module):
    """A local Hugging Face encoder (e.g. a BERT folder) with its own tokenizer; mean-pooled output."""

    def __init__(self, path: str | Path, *, max_len: int = 77) -> None:
        super().__init__()
        self.model, self.hf_tokenizer = load_hf_text_model(path)
        self.max_len = max_len
        self.embed_dim = int(self.model.config.hidden_size)
        self.pad_id = int(getattr(self.hf_tokenizer, "pad_token_id", None) or 0)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """``(N, max_len)`` token ids, padded with the model's pad id."""
        return self.hf_tokenizer(
            captions, padding="max_length", truncation=True, max_length=self.max_len, return_tensors="pt"
        )["input_ids"]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids -> ``(B, hidden)`` mean-pooled features of the real tokens."""
        mask = tokens != self.pad_id
        hidden = self.model(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def load_hf_text_model(path: str | Path) -> tuple[nn.Module, object]:
    """Model and tokenizer from a local folder only; a missing folder or library is a ConfigError."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: text_encoder folder does not exist (it is never downloaded)")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise ConfigError(
            f"{path}: a Hugging Face text_encoder needs the 'transformers' package, which is not installed"
        ) from None
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as err:  # transformers raises many types for a malformed folder
        raise ConfigError(f"{path}: not a Hugging Face model folder ({type(err).__name__}: {err})") from None
    return model, tokenizer

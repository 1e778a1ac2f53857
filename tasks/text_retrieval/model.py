"""The retrieval model: image backbone (or cached features) and text encoder, projected into one space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saip_bench.evaluate.linear import apply_batched


class RetrievalModel(nn.Module):
    """Image and text embeddings in a shared ``dim``-d space, plus an identity classifier on both.

    Args:
        text_encoder: maps ``(B, L)`` token ids to ``(B, text_encoder.embed_dim)``.
        image_dim: width of the image features (the backbone's ``embed_dim``).
        dim: shared embedding width.
        num_classes: training identities for the ID loss (0: no classifier).
        backbone: the image backbone; None for a model only ever fed cached features. Either way a 2-D input
            ``(B, image_dim)`` is taken as cached features (the linear probe's) and skips the backbone.

    Image features, from the backbone or cached, are standardised with the buffers ``feature_mean`` and
    ``feature_std`` before the projection: the identity (0 and 1) unless :meth:`set_feature_stats` is called,
    as the linear probe does with its training split's statistics. Being part of the model, they are saved
    with the head and apply when the model is later evaluated on images (the scale probe).
    """

    def __init__(
        self, text_encoder: nn.Module, *, image_dim: int, dim: int = 256, num_classes: int = 0,
        backbone: nn.Module | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.text = text_encoder
        self.image_proj = nn.Linear(image_dim, dim)
        self.text_proj = nn.Linear(int(text_encoder.embed_dim), dim)
        self.classifier = nn.Linear(dim, num_classes, bias=False) if num_classes > 0 else None
        self.register_buffer("feature_mean", torch.zeros(image_dim))
        self.register_buffer("feature_std", torch.ones(image_dim))
        self.register_load_state_dict_pre_hook(_identity_stats_if_missing)
        # Registered last: the head's parameters come first in the optimizer, as they always have.
        self.backbone = backbone

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, dim)`` embeddings of ``(B, 3, H, W)`` images (through the backbone) or cached features."""
        if x.ndim != 2:
            if self.backbone is None:
                raise ValueError(
                    f"a model without backbone takes (B, image_dim) features, got {tuple(x.shape)}"
                )
            x = self.backbone(x)
        return self.image_proj((x.float() - self.feature_mean) / self.feature_std)

    @torch.no_grad()
    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise image features with this ``(image_dim,)`` mean and std from now on."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)

    def embed_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids -> ``(B, dim)`` embeddings."""
        return self.text_proj(self.text(tokens).float())

    def forward(
        self, x: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Both embeddings and, with a classifier, their identity logits (one forward, so DDP syncs all)."""
        image, text = self.embed_image(x), self.embed_text(tokens)
        if self.classifier is None:
            return image, text, None, None
        return image, text, self.classifier(image), self.classifier(text)


def _identity_stats_if_missing(module: RetrievalModel, state_dict: dict, prefix: str, *args) -> None:
    """A whole model saved before the feature statistics existed: fill in the identity it behaved as.

    Only a state with backbone weights (a fine-tune's model or checkpoint, whose features were never
    standardised) gets them. An older linear-probe head (no backbone keys) was trained on standardised
    features whose statistics it did not save: it stays missing both keys, and a strict load names them.
    """
    if not any(key.startswith(prefix + "backbone.") for key in state_dict):
        return
    for name, fill in (("feature_mean", torch.zeros_like), ("feature_std", torch.ones_like)):
        state_dict.setdefault(prefix + name, fill(getattr(module, name)))


def embed_batched(fn, inputs: torch.Tensor, *, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """``fn`` over ``inputs`` in batches on ``device``; L2-normalised float32 rows on the CPU."""
    return F.normalize(apply_batched(fn, inputs, device=device, batch_size=batch_size), dim=1)

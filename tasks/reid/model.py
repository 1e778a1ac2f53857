"""Re-ID model: backbone -> global feature -> BNNeck -> identity classifier (Luo et al., "Bag of Tricks").

The triplet loss sees the feature before the BatchNorm, the ID loss sees the classifier on the feature after
it; retrieval uses the BN feature (``feat="bn"``, the usual choice) or the raw one (``feat="pre"``). The BN's
shift is frozen at 0, as in the BNNeck paper, so the BN feature stays centred for Euclidean/cosine retrieval.
"""

from __future__ import annotations

import torch
from torch import nn

#: What :meth:`ReidModel.forward` can return in eval mode: the BNNeck feature or the backbone's own.
FEATURES = ("bn", "pre")


class ReidModel(nn.Module):
    """Backbone plus BNNeck head.

    Args:
        backbone: a module mapping ``(B, 3, H, W)`` to ``(B, embed_dim)`` (a saip_bench ``Backbone``).
        embed_dim: width of the backbone's global feature.
        num_classes: number of training identities (0 for a retrieval-only model with no classifier).
        feat: which feature :meth:`forward` returns in eval mode: ``"bn"`` or ``"pre"``.
    """

    def __init__(self, backbone: nn.Module, embed_dim: int, num_classes: int, *, feat: str = "bn") -> None:
        super().__init__()
        if feat not in FEATURES:
            raise ValueError(f"feat must be one of {', '.join(FEATURES)}, not {feat!r}")
        self.backbone = backbone
        self.feat = feat
        self.bottleneck = nn.BatchNorm1d(embed_dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(embed_dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Training: ``(logits, pre-BN feature)``; eval: the retrieval feature ``(B, embed_dim)``."""
        feat = self.backbone(images)
        if not self.training:
            return self.bottleneck(feat) if self.feat == "bn" else feat
        if self.classifier is None:
            raise RuntimeError("a retrieval-only ReidModel (num_classes=0) cannot be trained")
        return self.classifier(self.bottleneck(feat)), feat

"""Attribute classifier: a linear layer on the backbone's pooled feature, then BatchNorm on the logits.

This is Rethinking_of_PAR's ``linear`` classifier with ``bn=True`` (Linear -> BatchNorm1d over the
attribute logits): the BN re-centres every attribute's logit, which matters because attribute priors are very
unbalanced.
At inference the head is still one affine map of the feature, so "linear probe" stays literally true.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from saip_bench.tasks.attribute.losses import WeightedBCELoss


class AttributeHead(nn.Module):
    """``(B, in_dim)`` pooled features -> ``(B, num_attrs)`` logits."""

    def __init__(self, in_dim: int, num_attrs: int, *, bn: bool = True) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.num_attrs = num_attrs
        self.fc = nn.Linear(in_dim, num_attrs)
        self.bn = nn.BatchNorm1d(num_attrs) if bn else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_dim)
        nn.init.uniform_(self.fc.weight, -bound, bound)
        nn.init.zeros_(self.fc.bias)
        if isinstance(self.bn, nn.BatchNorm1d):
            self.bn.reset_parameters()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(feats))


class AttributeModel(nn.Module):
    """Backbone (anything whose ``forward(x)`` returns ``(B, D)``) followed by an :class:`AttributeHead`.

    The model owns its training loss, the positive-ratio weighted BCE (:class:`.losses.WeightedBCELoss`,
    whose ratios of the training split move with the model and stay out of its checkpoints):
    ``model(images, targets)`` returns the loss through the model's own forward, which is what a DDP wrapper
    synchronises.
    """

    def __init__(
        self, backbone: nn.Module, head: AttributeHead, *, pos_ratio: np.ndarray | torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.criterion = WeightedBCELoss(pos_ratio)

    def forward(
        self, images: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """``(B, A)`` logits; with ``targets`` (``(B, A)`` 0/1 labels) ``{"loss": weighted BCE}`` instead."""
        logits = self.head(self.backbone(images))
        if targets is None:
            return logits
        return {"loss": self.criterion(logits.float(), targets)}

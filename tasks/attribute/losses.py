"""Positive-ratio weighted binary cross-entropy (Li et al., TIP 2020; the weighting of Rethinking_of_PAR).

A sample's term for attribute ``j`` is weighted ``exp(1 - r_j)`` when the attribute is present and
``exp(r_j)`` when it is absent, ``r_j`` being the attribute's positive ratio on the training split: rare
positives weigh up to ``e`` times more than common negatives, which is what makes mA (balanced per attribute)
improve.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def positive_ratio(labels: np.ndarray) -> np.ndarray:
    """Fraction of samples in which each attribute is present: ``(N, A)`` labels -> ``(A,)`` float32."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty (samples, attributes) matrix, got shape {labels.shape}")
    return (labels == 1).mean(axis=0).astype(np.float32)


def ratio_weights(targets: torch.Tensor, pos_ratio: torch.Tensor) -> torch.Tensor:
    """Per-element weights ``exp(t * (1 - r) + (1 - t) * r)`` for binary targets ``t`` and ratios ``r``."""
    ratio = pos_ratio.to(device=targets.device, dtype=targets.dtype)
    return torch.exp(targets * (1 - ratio) + (1 - targets) * ratio)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_ratio: torch.Tensor | None) -> torch.Tensor:
    """Weighted BCE summed over attributes and averaged over the batch (the reference's ``size_sum``).

    Args:
        logits: ``(B, A)`` raw scores.
        targets: ``(B, A)`` 0/1 labels.
        pos_ratio: ``(A,)`` positive ratios from the training split, or None for unweighted BCE.
    """
    targets = targets.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if pos_ratio is not None:
        # The weights depend only on the labels, so no gradient flows through them.
        loss = loss * ratio_weights((targets > 0.5).to(logits.dtype), pos_ratio)
    return loss.sum(dim=1).mean()


class WeightedBCELoss(nn.Module):
    """:func:`weighted_bce` as a module holding the training split's positive ratios as a buffer."""

    def __init__(self, pos_ratio: np.ndarray | torch.Tensor | None) -> None:
        super().__init__()
        ratio = None if pos_ratio is None else torch.as_tensor(np.asarray(pos_ratio), dtype=torch.float32)
        self.register_buffer("pos_ratio", ratio, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return weighted_bce(logits, targets, self.pos_ratio)

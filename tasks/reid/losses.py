"""Re-ID losses: identity cross-entropy with label smoothing, and the batch-hard triplet loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def id_loss(logits: torch.Tensor, targets: torch.Tensor, *, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy against ``(1 - eps) * one_hot + eps / C`` (Szegedy et al.; eps 0.1 in TransReID)."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    smooth = torch.full_like(log_probs, smoothing / logits.shape[1])
    smooth.scatter_(1, targets[:, None], 1.0 - smoothing + smoothing / logits.shape[1])
    return -(smooth * log_probs).sum(1).mean()


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` Euclidean distances, clamped away from 0 so the square root has a gradient."""
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None, :] - 2.0 * x @ y.t()
    return d2.clamp(min=1e-12).sqrt()


def triplet_loss(
    feats: torch.Tensor, targets: torch.Tensor, *, margin: float | None = 0.3, normalize: bool = False
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al.): hardest positive vs hardest negative of every anchor.

    Args:
        feats: ``(B, D)`` features.
        targets: ``(B,)`` identity labels; every anchor needs one positive and one negative in the batch.
        margin: ranking margin; ``None`` uses the soft margin ``log(1 + exp(d_ap - d_an))``.
        normalize: L2-normalise the features first.
    """
    feats = feats.float()
    if normalize:
        feats = F.normalize(feats, dim=1)
    dist = pairwise_euclidean(feats, feats)
    same = targets[:, None] == targets[None, :]
    hardest_pos = torch.where(same, dist, torch.zeros_like(dist)).max(1).values
    hardest_neg = torch.where(same, torch.full_like(dist, float("inf")), dist).min(1).values
    if margin is None:
        return F.softplus(hardest_pos - hardest_neg).mean()
    return F.relu(hardest_pos - hardest_neg + margin).mean()

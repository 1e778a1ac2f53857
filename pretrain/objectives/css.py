"""Cross-scale search (CSS) loss: BCE of the predicted "where is this person" logits vs its paste mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["css_loss", "resize_mask"]


def resize_mask(masks: torch.Tensor, size: tuple[int, int], *, mode: str = "nearest") -> torch.Tensor:
    """``(B, Q, H, W)`` masks -> ``(B, Q, *size)``.

    ``"nearest"`` keeps them binary (as the original code); ``"area"`` gives the covered fraction of each
    cell as a soft target.
    """
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.float()
    if mode not in ("nearest", "area"):
        raise ValueError(f"mode must be 'nearest' or 'area', got {mode!r}")
    return F.interpolate(masks.float(), size=size, mode=mode)


def css_loss(logits: torch.Tensor, masks: torch.Tensor, *, mode: str = "nearest") -> torch.Tensor:
    """Mean binary cross-entropy with logits against the paste masks at the logits' resolution.

    Args:
        logits: ``(B, Q, h, w)`` mask logits (one channel per query person).
        masks: ``(B, Q, H, W)`` binary paste masks (or ``(B, H, W)`` for one query).
        mode: How the masks are resized (see :func:`resize_mask`).

    Returns:
        The scalar loss.
    """
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if logits.dim() == 3:
        logits = logits.unsqueeze(1)
    if logits.shape[:2] != masks.shape[:2]:
        raise ValueError(f"logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ in (B, Q)")
    target = resize_mask(masks, tuple(logits.shape[-2:]), mode=mode).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())

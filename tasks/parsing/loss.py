"""Pixel-wise training losses for parsing: plain cross-entropy (the field's LIP/CIHP recipe) and OHEM.

``ce`` is the softmax cross-entropy over all labelled pixels (255 ignored), averaged; CE2P, SCHP, HAP and
SOLIDER train LIP and CIHP with it (SCHP adds Lovasz and edge terms).

``ohem`` is online hard example mining as mmsegmentation's ``OHEMPixelSampler`` does it: a pixel is kept when
the predicted probability of its true class is below ``thresh``; when fewer than ``min_kept`` pixels per
image would be kept, the threshold is raised to the probability of the ``min_kept``-th hardest pixel, so at
least that many train. The loss is the mean over the kept pixels. On parsing crops, where background fills
most pixels and is learnt first, it moves the gradient to the part pixels that are still wrong; the smoke
budgets use it to learn parts within a few dozen steps (a dense task's head otherwise spends them on the
background prior).

``balanced`` is class-balanced cross-entropy with ENet's weights (Paszke et al., 2016),
``w_c = 1 / ln(1.02 + f_c)`` for the frequency ``f_c`` of class ``c`` among the batch's labelled pixels:
background (most pixels) gets a weight near 1, a part filling 1% of the pixels about 30 (bounded by 1/ln 1.02
~ 50). The frequencies are the batch's own, so no pass over the training set is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saip_bench.errors import ConfigError
from saip_bench.tasks.parsing.data import IGNORE_INDEX

LOSSES = ("ce", "ohem", "balanced")


def check_loss(name: str, *, thresh: float, min_kept: int, balance_c: float) -> None:
    """Refuse a ``loss`` section :func:`parsing_loss` cannot run (before any data is read).

    Args:
        name: ``"ce"``, ``"ohem"`` or ``"balanced"``.
        thresh: OHEM keeps pixels whose true-class probability is below this, in ``(0, 1]``.
        min_kept: OHEM keeps at least this many pixels per image, at least 1.
        balance_c: the constant ``c`` of the balanced weights ``1 / ln(c + f)``, above 1: ENet's 1.02 caps the
            weight ratio at ~50; a larger ``c`` balances more gently (1.1: ~10).

    Raises:
        ConfigError: an unknown name or a value out of its range.
    """
    if name not in LOSSES:
        raise ConfigError(f"recipe loss.name must be one of {', '.join(LOSSES)}, not {name!r}")
    if not 0.0 < thresh <= 1.0 or min_kept < 1 or balance_c <= 1.0:
        raise ConfigError(
            f"recipe loss needs 0 < thresh <= 1, min_kept >= 1 and balance_c > 1, got {thresh}, {min_kept}, "
            f"{balance_c}"
        )


def ohem_mask(logits: torch.Tensor, targets: torch.Tensor, thresh: float, min_kept: int) -> torch.Tensor:
    """``(B, H, W)`` bool: the labelled pixels OHEM trains on (see module docstring).

    Args:
        logits: ``(B, C, H, W)``.
        targets: ``(B, H, W)`` class ids, ``IGNORE_INDEX`` for unlabelled pixels.
        thresh: probability threshold.
        min_kept: minimum kept pixels per image.
    """
    with torch.no_grad():
        valid = targets != IGNORE_INDEX
        prob = torch.softmax(logits.float(), dim=1)
        true_prob = prob.gather(1, targets.clamp(max=logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        true_prob = true_prob.masked_fill(~valid, 2.0)  # never below any threshold
        kept = min(int(valid.sum()), min_kept * targets.shape[0])
        threshold = thresh
        if kept > 0:
            kth = torch.kthvalue(true_prob.flatten(), kept).values
            threshold = max(thresh, float(kth))
        return valid & (true_prob <= threshold)


def balanced_weights(targets: torch.Tensor, num_classes: int, c: float = 1.02) -> torch.Tensor:
    """ENet class weights ``1 / ln(c + f)`` from the class frequencies ``f`` of the labelled pixels."""
    labelled = targets[targets != IGNORE_INDEX]
    freq = torch.bincount(labelled, minlength=num_classes)[:num_classes].float() / max(1, labelled.numel())
    return 1.0 / torch.log(c + freq)


def parsing_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    name: str = "ce",
    thresh: float = 0.7,
    min_kept: int = 100000,
    balance_c: float = 1.02,
) -> torch.Tensor:
    """The mean loss ``name`` of ``(B, C, H, W)`` logits against ``(B, H, W)`` targets (see module docstring;
    the other arguments are :func:`check_loss`'s)."""
    if name == "ohem":
        keep = ohem_mask(logits, targets, thresh, min_kept)
        targets = targets.masked_fill(~keep, IGNORE_INDEX)
    if not (targets != IGNORE_INDEX).any():  # an all-padding crop: no pixel to learn from (CE would be NaN)
        return logits.sum() * 0.0
    weight = None
    if name == "balanced":
        weight = balanced_weights(targets, logits.shape[1], balance_c)
    return F.cross_entropy(logits, targets, weight=weight, ignore_index=IGNORE_INDEX)

"""CSS loss: low when the predicted mask equals the paste mask, high when inverted."""

from __future__ import annotations

import torch

from saip_bench.pretrain.objectives import css_loss, resize_mask


def _paste_mask():
    mask = torch.zeros(2, 2, 224, 224)
    mask[0, 0, 32:160, 48:112] = 1  # aligned to the 16-pixel cells of a 14x14 map
    mask[0, 1, 64:192, 144:208] = 1
    mask[1, 0, 0:128, 0:64] = 1
    mask[1, 1, 96:224, 160:224] = 1
    return mask


def test_low_when_prediction_matches_high_when_inverted():
    mask = _paste_mask()
    small = resize_mask(mask, (14, 14))
    right = (small * 2 - 1) * 20.0
    assert css_loss(right, mask).item() < 1e-6
    assert css_loss(-right, mask).item() > 10.0
    assert css_loss(torch.zeros_like(right), mask).item() > 0.5


def test_mask_resized_to_logit_resolution():
    mask = _paste_mask()
    small = resize_mask(mask, (14, 14))
    assert small.shape == (2, 2, 14, 14) and set(small.unique().tolist()) == {0.0, 1.0}
    assert small[0, 0].sum() == 8 * 4
    area = resize_mask(mask, (7, 7), mode="area")
    assert area.min() > 0 or area.unique().numel() >= 2


def test_single_query_shapes():
    mask = _paste_mask()[:, 0]
    logits = torch.zeros(2, 1, 28, 28, requires_grad=True)
    loss = css_loss(logits, mask)
    loss.backward()
    assert logits.grad.shape == (2, 1, 28, 28)

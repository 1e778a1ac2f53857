"""Weighted BCE and the attribute head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saip_bench.tasks.attribute.losses import WeightedBCELoss, positive_ratio, ratio_weights, weighted_bce
from saip_bench.tasks.attribute.model import AttributeHead, AttributeModel


def test_ratio_weights_follow_the_positive_ratio() -> None:
    ratio = torch.tensor([0.2, 0.9])
    w = ratio_weights(torch.tensor([[1.0, 1.0], [0.0, 0.0]]), ratio)
    # present: exp(1 - r); absent: exp(r): the rare positive (r = 0.2) weighs exp(0.8), its negative exp(0.2)
    expected = [[math.exp(0.8), math.exp(0.1)], [math.exp(0.2), math.exp(0.9)]]
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_weighted_bce_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ratio = torch.tensor([0.25, 0.5])
    elem = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weights = torch.tensor([[math.exp(0.75), math.exp(0.5)], [math.exp(0.25), math.exp(0.5)]])
    expected = (elem * weights).sum(1).mean()
    assert weighted_bce(logits, targets, ratio).item() == pytest.approx(expected.item(), rel=1e-6)
    assert WeightedBCELoss(ratio.numpy())(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    assert weighted_bce(logits, targets, None).item() == pytest.approx(elem.sum(1).mean().item(), rel=1e-6)


def test_positive_ratio() -> None:
    np.testing.assert_allclose(positive_ratio(np.array([[1, 0], [1, 1], [0, 0], [1, 0]])), [0.75, 0.25])
    with pytest.raises(ValueError):
        positive_ratio(np.zeros((0, 3)))


def test_head_and_model_shapes_and_gradients() -> None:
    head = AttributeHead(16, 5)
    model = AttributeModel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16)), head)
    out = model(torch.randn(4, 3, 2, 2))
    assert out.shape == (4, 5)
    weighted_bce(out, torch.randint(0, 2, (4, 5)).float(), torch.full((5,), 0.3)).backward()
    assert head.fc.weight.grad is not None and head.fc.weight.grad.abs().sum() > 0
    assert isinstance(AttributeHead(16, 5, bn=False).bn, torch.nn.Identity)


def test_model_with_targets_returns_its_weighted_loss_and_keeps_the_ratios_out_of_its_state() -> None:
    torch.manual_seed(0)
    ratio = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    model = AttributeModel(torch.nn.Flatten(), AttributeHead(12, 3), pos_ratio=ratio)
    images, targets = torch.randn(4, 3, 2, 2), torch.randint(0, 2, (4, 3)).float()
    loss = model(images, targets)["loss"]
    assert loss.item() == pytest.approx(weighted_bce(model(images), targets, torch.from_numpy(ratio)).item())
    assert loss.item() != pytest.approx(weighted_bce(model(images), targets, None).item())
    assert not any("ratio" in key for key in model.state_dict())

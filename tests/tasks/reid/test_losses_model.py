"""ID loss with label smoothing, batch-hard triplet loss and the BNNeck model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saip_bench.tasks.reid.losses import id_loss, triplet_loss
from saip_bench.tasks.reid.model import ReidModel


def test_id_loss_equals_cross_entropy_without_smoothing_and_smooths_otherwise() -> None:
    logits, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.allclose(id_loss(logits, targets, smoothing=0.0), F.cross_entropy(logits, targets))
    expected = F.cross_entropy(logits, targets, label_smoothing=0.1)
    assert torch.allclose(id_loss(logits, targets, smoothing=0.1), expected, atol=1e-6)


def test_triplet_loss_hardest_pairs_by_hand() -> None:
    feats = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest pos 1.0, hardest neg 1.5 -> 0.3 + 1.0 - 1.5 < 0 -> 0
    # anchor 1: pos 1.0, neg 0.5 -> 0.8; anchor 2: pos 2.5, neg 0.5 -> 2.3; anchor 3: pos 2.5, neg 3.0 -> 0
    loss = triplet_loss(feats, labels, margin=0.3)
    assert loss.item() == pytest.approx((0.0 + 0.8 + 2.3 + 0.0) / 4, abs=1e-5)
    soft = triplet_loss(feats, labels, margin=None)
    expected = F.softplus(torch.tensor([1.0 - 1.5, 1.0 - 0.5, 2.5 - 0.5, 2.5 - 3.0])).mean()
    assert torch.allclose(soft, expected, atol=1e-5)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_bnneck_outputs_and_frozen_shift() -> None:
    model = ReidModel(_Toy(), 8, 5)
    x = torch.randn(4, 3, 2, 2)
    logits, feat = model(x)
    assert logits.shape == (4, 5) and feat.shape == (4, 8)
    assert not model.bottleneck.bias.requires_grad
    model.eval()
    assert torch.allclose(model(x), model.bottleneck(model.backbone(x)))
    model.feat = "pre"
    assert torch.allclose(model(x), model.backbone(x))

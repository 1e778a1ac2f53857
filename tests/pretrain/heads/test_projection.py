"""Projection head: out_dim honoured, L2-normalised bottleneck, weight-normalised prototypes."""

from __future__ import annotations

import pytest
import torch

from saip_bench.pretrain.heads import ProjectionHead


@pytest.mark.parametrize("out_dim", [7, 300])
def test_out_dim_is_honoured(out_dim):
    head = ProjectionHead(16, out_dim, hidden_dim=32, bottleneck_dim=8)
    assert head(torch.randn(5, 16)).shape == (5, out_dim)
    assert head.last_layer.weight.shape == (out_dim, 8)


def test_prototypes_have_unit_norm_and_frozen_gain():
    head = ProjectionHead(16, 50, hidden_dim=32, bottleneck_dim=8)
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(50))
    gain = head.last_layer.parametrizations.weight.original0
    assert not gain.requires_grad
    # Logits are cosines: bounded by 1 in magnitude.
    assert head(torch.randn(64, 16) * 100).abs().max() <= 1 + 1e-5
    trainable = ProjectionHead(16, 50, hidden_dim=32, bottleneck_dim=8, norm_last_layer=False)
    assert trainable.last_layer.parametrizations.weight.original0.requires_grad


def test_layer_count():
    head = ProjectionHead(16, 10, hidden_dim=32, bottleneck_dim=8, n_layers=3)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(32, 16), (32, 32), (8, 32)]
    assert sum(isinstance(m, torch.nn.Linear) for m in ProjectionHead(16, 10, n_layers=1).mlp) == 1

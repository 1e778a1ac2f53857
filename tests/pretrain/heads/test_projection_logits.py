"""The projection head scales its logits by the prototype norms instead of materialising the normalised
prototypes: same logits and gradients as the weight-norm parametrisation's own forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from saip_bench.pretrain.heads import ProjectionHead


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_logits_and_gradients_equal_the_parametrised_layer(norm_last_layer):
    torch.manual_seed(0)
    head = ProjectionHead(32, 100, hidden_dim=64, bottleneck_dim=16, norm_last_layer=norm_last_layer)
    with torch.no_grad():  # gains away from 1, so a wrong scale cannot pass
        head.last_layer.parametrizations.weight.original0.uniform_(0.5, 2.0)
    x = torch.randn(5, 32)
    w = torch.randn(5, 100)

    def grads(logits):
        head.zero_grad()
        (logits * w).sum().backward()
        return [p.grad.clone() for p in head.parameters() if p.requires_grad]

    fast = head(x)
    fast_grads = grads(fast)
    reference = head.last_layer(F.normalize(head.mlp(x), dim=-1))
    torch.testing.assert_close(fast, reference)
    for got, want in zip(fast_grads, grads(reference), strict=True):  # fp32 rounding in another order
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert len(fast_grads) == len(list(head.mlp.parameters())) + 1 + (not norm_last_layer)

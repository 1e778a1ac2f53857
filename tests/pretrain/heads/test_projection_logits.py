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


def test_hand_written_backward_passes_gradcheck():
    """The prototype layer's backward against finite differences (float64), trainable gains away from 1."""
    from saip_bench.pretrain.heads.projection import prototype_logits

    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    v = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    g = torch.empty(9, 1, dtype=torch.float64).uniform_(0.5, 2.0).requires_grad_(True)
    assert torch.autograd.gradcheck(prototype_logits, (x, v, g))


def test_bf16_autocast_is_as_close_to_fp32_as_the_parametrised_layer():
    """Under CPU bf16 autocast the logits stay fp32, and logits and prototype gradients are no further from
    the fp32 ones than the parametrised layer's own bf16 results."""
    torch.manual_seed(0)
    head = ProjectionHead(32, 100, hidden_dim=64, bottleneck_dim=16)
    x = torch.randn(5, 32)
    w = torch.randn(5, 100)
    v = head.last_layer.parametrizations.weight.original1

    def run(fast: bool, bf16: bool):
        v.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = head(x) if fast else head.last_layer(F.normalize(head.mlp(x), dim=-1)).float()
        (logits * w).sum().backward()
        return logits.detach(), v.grad.clone()

    exact_logits, exact_grad = run(fast=False, bf16=False)
    fast_logits, fast_grad = run(fast=True, bf16=True)
    ref_logits, ref_grad = run(fast=False, bf16=True)
    assert fast_logits.dtype == fast_grad.dtype == torch.float32
    assert (fast_logits - exact_logits).abs().max() > 0  # bf16 did run
    for fast, ref, exact in ((fast_logits, ref_logits, exact_logits), (fast_grad, ref_grad, exact_grad)):
        assert (fast - exact).norm() <= 1.5 * (ref - exact).norm()

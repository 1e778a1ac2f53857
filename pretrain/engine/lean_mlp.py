"""A memory-lean training path for timm's ``Mlp`` (fc1 -> GELU -> fc2), used in fp32 training.

Autograd normally keeps both fc1's output (for GELU's backward) and GELU's output (for fc2's weight
gradient): two hidden-width tensors per token per block. Fusing GELU into fc2's autograd node keeps only the
first and recomputes GELU (a cheap elementwise op) in the backward pass. In ViT-Tiny and the 512-d CSR
decoder that is about a quarter of all saved activations, which is what keeps the CPU recipe's peak memory
under budget. Weights, their names and the math are unchanged; under autocast (bf16 on CUDA), without
gradients, or for any Mlp with dropout or an inner norm the module's own forward runs.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` saving ``h`` instead of ``gelu(h)``."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, approximate: str):
        ctx.save_for_backward(h, weight)
        ctx.approximate = approximate
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(h, approximate=approximate), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        h, weight = ctx.saved_tensors
        act = F.gelu(h, approximate=ctx.approximate)
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = g2.t().mm(act.reshape(-1, act.shape[-1]))
        del act
        grad_bias = g2.sum(0) if ctx.has_bias else None
        grad_h = torch.ops.aten.gelu_backward(grad_out.matmul(weight), h, approximate=ctx.approximate)
        return grad_h, grad_weight, grad_bias, None


def _eligible(mlp: nn.Module) -> bool:
    return (
        isinstance(getattr(mlp, "fc1", None), nn.Linear)
        and isinstance(getattr(mlp, "fc2", None), nn.Linear)
        and type(getattr(mlp, "act", None)) is nn.GELU
        and isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity)
        and getattr(mlp.drop1, "p", 0.0) == 0.0
        and getattr(mlp.drop2, "p", 0.0) == 0.0
    )


def _lean_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
        return type(self).forward(self, x)
    return _GeluLinear.apply(self.fc1(x), self.fc2.weight, self.fc2.bias, self.act.approximate)


def make_mlps_lean(module: nn.Module) -> int:
    """Switch every eligible timm ``Mlp`` inside ``module`` to the lean path; returns how many."""
    from timm.layers import Mlp

    count = 0
    for sub in module.modules():
        if isinstance(sub, Mlp) and _eligible(sub):
            sub.forward = types.MethodType(_lean_forward, sub)
            count += 1
    return count

"""Projection head of CSM (and DINO): MLP -> L2-normalised bottleneck -> weight-normalised prototypes."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["ProjectionHead", "prototype_logits"]


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 at least (float64 stays float64)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class _PrototypeLogits(torch.autograd.Function):
    """``(x @ v.T) * (g / ||v||).T``: weight-normalised prototype logits with a hand-written backward.

    Autograd through ``linalg.vector_norm`` and the broadcast scale walks the whole (K, D) prototype matrix
    four more times (divide by the norm, multiply by the incoming gradient, ...; about 0.3 s of a 5 s CPU
    step at 65,536 x 256). By hand the gradient of ``v`` is one matmul and one fused pass:
    ``dv = s * (G.T @ x) - (a * s / ||v||^2) * v`` and ``dg = a / ||v||``, with ``s = g / ||v||`` and
    ``a = sum_n G * (x @ v.T)`` per prototype.
    Under autocast the matmuls run in the autocast dtype, as ``F.linear`` would.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(_wide(v), dim=1, keepdim=True)  # (K, 1)
        scale = _wide(g) / norm
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
        xc, vc = (x, v) if dtype is None else (x.to(dtype), v.to(dtype))
        with torch.autocast(x.device.type, enabled=False):
            z = xc.mm(vc.t())
        ctx.save_for_backward(xc, vc, norm, scale, z)
        ctx.dtypes = (x.dtype, v.dtype, g.dtype)
        return z * scale.t()  # fp32 under bf16 autocast, as the parametrised layer gave

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        xc, vc, norm, scale, z = ctx.saved_tensors
        grad_x = grad_v = grad_g = None
        a = (grad_y * z).sum(0).unsqueeze(1)  # (K, 1): sum_n G[n, k] * (x_n . v_k)
        gs = (grad_y * scale.t()).to(vc.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = gs.mm(vc).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            grad_v = _wide(gs.t().mm(xc))
            grad_v.addcmul_(vc, a * scale / norm.square(), value=-1.0)
            grad_v = grad_v.to(ctx.dtypes[1])
        if ctx.needs_input_grad[2]:
            grad_g = (a / norm).to(ctx.dtypes[2])
        return grad_x, grad_v, grad_g


def prototype_logits(x: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Logits of ``x`` (N, D) against weight-normalised prototypes ``g * v / ||v||`` (K, D), g (K, 1)."""
    return _PrototypeLogits.apply(x, v, g)


class ProjectionHead(nn.Module):
    """``n_layers``-layer MLP (GELU) to a ``bottleneck_dim`` vector, L2-normalised, then a weight-normalised
    linear layer (no bias) to ``out_dim`` prototype logits.

    Args:
        in_dim: Input width (the backbone's embed dim).
        out_dim: Number of prototypes (honoured as given).
        hidden_dim: Hidden width of the MLP.
        bottleneck_dim: Output width of the MLP.
        n_layers: Linear layers in the MLP (>= 1).
        norm_last_layer: Freeze the prototypes' norms at 1 (the weight-norm gain is not trained).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        n_layers: int = 3,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1 or out_dim < 1:
            raise ValueError(f"n_layers ({n_layers}) and out_dim ({out_dim}) must be >= 1")
        self.out_dim = int(out_dim)
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < n_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, self.out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        if norm_last_layer:
            gain.requires_grad_(False)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim)`` -> ``(N, out_dim)`` prototype logits."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        # The weight-normalised prototypes W = g * v / ||v|| (per row) scale the logits instead of being
        # materialised: for 65,536 prototypes that spares a 64 MB weight and its gradient every step.
        wn = self.last_layer.parametrizations.weight
        return prototype_logits(x, wn.original1, wn.original0)

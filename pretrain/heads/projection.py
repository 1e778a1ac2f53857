"""Projection head of CSM (and DINO): MLP -> L2-normalised bottleneck -> weight-normalised prototypes."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["ProjectionHead"]


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
        g, v = wn.original0, wn.original1
        return F.linear(x, v) * (g / torch.linalg.vector_norm(v, dim=1, keepdim=True)).t()

"""CSR decoder: an MAE-style transformer decoder that reconstructs the enlarged view's patches, conditioned
on the base-scale global view's token(s)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

__all__ = ["CSRDecoder", "sincos_pos_embed_2d"]


def sincos_pos_embed_2d(
    dim: int, grid: tuple[int, int], base_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """Fixed 2-D sin-cos position codes ``(gh*gw, dim)`` for cell centres measured in ``base_grid`` units.

    With ``base_grid`` set, a cell of an enlarged grid gets the code of the place it covers on the base grid,
    so the same image region has (nearly) the same code at every scale.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position codes need a dim divisible by 4, got {dim}")
    gh, gw = grid
    bh, bw = base_grid if base_grid is not None else grid
    ys = (torch.arange(gh, dtype=torch.float64) + 0.5) * (bh / gh) - 0.5
    xs = (torch.arange(gw, dtype=torch.float64) + 0.5) * (bw / gw) - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    parts = []
    for coord in (yy.reshape(-1), xx.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()


class CSRDecoder(nn.Module):
    """Reconstructs every patch of a masked (enlarged) view from its visible tokens and a condition.

    Sequence: [masked view's CLS, condition token(s), one token per patch of the enlarged grid (visible
    tokens at their places, a learned mask token elsewhere)], plus fixed 2-D sin-cos codes on base-grid
    coordinates and learned type codes for the two prefix kinds.

    Args:
        embed_dim: Width of the encoder tokens.
        patch_size: Patch side p (prediction = p*p*in_chans values per patch).
        in_chans: Image channels.
        decoder_dim: Decoder width.
        depth: Decoder blocks.
        num_heads: Decoder heads.
        mlp_ratio: MLP expansion of the blocks.
        base_grid: Grid of the base-scale view (the mask's grid; position codes are measured on it).
    """

    def __init__(
        self,
        embed_dim: int,
        *,
        patch_size: int = 16,
        in_chans: int = 3,
        decoder_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        base_grid: tuple[int, int] = (16, 8),
    ) -> None:
        super().__init__()
        self.patch_size, self.in_chans = int(patch_size), int(in_chans)
        self.base_grid = (int(base_grid[0]), int(base_grid[1]))
        self.decoder_dim = int(decoder_dim)
        self.embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.cls_type = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.cond_type = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            [Block(decoder_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm) for _ in range(depth)]
        )
        self.norm = norm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_size * patch_size * in_chans)
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.mask_token, self.cls_type, self.cond_type):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def pos_embed(self, grid: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``(1, gh*gw, decoder_dim)`` fixed codes for ``grid`` (cached per grid, device and dtype)."""
        key = (tuple(grid), device, dtype)
        pos = self._pos_cache.get(key)
        if pos is None:
            pos = sincos_pos_embed_2d(self.decoder_dim, grid, self.base_grid).to(device=device, dtype=dtype)[
                None
            ]
            self._pos_cache[key] = pos
        return pos

    def forward(
        self,
        tokens: torch.Tensor,
        keep_idx: torch.Tensor,
        grid: tuple[int, int],
        cond: torch.Tensor,
        keep_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict every patch of the masked view.

        Args:
            tokens: ``(B, 1+K, D)`` encoder tokens of the masked view (CLS, then the kept patches).
            keep_idx: ``(B, K)`` grid indices of the kept patches.
            grid: ``(GH, GW)`` grid of the masked view.
            cond: ``(B, C, D)`` or ``(B, D)`` condition token(s) of the base-scale view (e.g. its CLS).
            keep_valid: ``(B, K)`` bool, False on padding entries of ``keep_idx`` (ignored).

        Returns:
            ``(B, GH*GW, p*p*in_chans)`` predicted pixels per patch (normalised-pixel space when trained so).
        """
        if cond.dim() == 2:
            cond = cond.unsqueeze(1)
        b, n_kept = keep_idx.shape
        n = grid[0] * grid[1]
        if tokens.shape[1] != 1 + n_kept:
            raise ValueError(f"{tokens.shape[1]} tokens for {n_kept} kept patches plus one CLS")
        x = self.embed(tokens)
        cls, visible = x[:, :1], x[:, 1:]
        # Padding entries are sent to an extra slot N that is dropped afterwards.
        idx = keep_idx if keep_valid is None else torch.where(keep_valid.bool(), keep_idx, n)
        canvas = self.mask_token.to(x.dtype).expand(b, n + 1, -1)
        canvas = canvas.scatter(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]), visible)[:, :n]
        canvas = canvas + self.pos_embed(grid, x.device, x.dtype)
        cond = self.embed(cond) + self.cond_type
        x = torch.cat([cls + self.cls_type, cond, canvas], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x[:, 1 + cond.shape[1] :]))

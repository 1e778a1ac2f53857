"""Cross-scale reconstruction (CSR): reconstruct the hidden patches of an enlarged view, normalised pixels.

The mask is drawn on the base grid (16x8 for 256x128) and carried to the enlarged grid (20x10 for x1.25) by
nearest upsampling, so the hidden regions are the same image regions at both scales. The enlarged grid's
visible count then varies from sample to sample; the original code nevertheless kept a fixed
``int(L * (1 - ratio))`` tokens per sample, so some visible patches were dropped and some hidden ones were
shown to the encoder. Here the kept tokens are exactly the visible ones: ``keep_from_mask`` pads each sample
to the batch's largest visible count and marks the padding, which the encoder excludes from attention.

Also the one copy of ``patchify`` / ``unpatchify`` and the masked normalised-pixel MSE the MAE baseline
shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "carry_mask",
    "csr_loss",
    "draw_base_mask",
    "keep_from_mask",
    "masked_mse",
    "patch_targets",
    "patchify",
    "unpatchify",
]


def patchify(imgs: torch.Tensor, patch_size: int = 16) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, (H/p)*(W/p), p*p*C)``, patches row-major, pixels (row, col, channel)."""
    b, c, h, w = imgs.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not a multiple of the patch size {p}")
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, grid: tuple[int, int], patch_size: int = 16) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, gh*gw, p*p*C)`` -> ``(B, C, gh*p, gw*p)``."""
    b, n, d = x.shape
    gh, gw = grid
    p = patch_size
    if n != gh * gw or d % (p * p):
        raise ValueError(f"{n} patches of {d} values do not fill a {gh}x{gw} grid of {p}x{p} patches")
    c = d // (p * p)
    return x.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, gh * p, gw * p)


def draw_base_mask(
    batch: int,
    base_grid: tuple[int, int] = (16, 8),
    ratio: float = 0.75,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per sample, hide ``N - int(N * (1 - ratio))`` of the base grid's N patches uniformly at random.

    Returns:
        ``(B, gh, gw)`` bool, True = hidden (drawn on the CPU from ``generator``, then moved to ``device``).
    """
    gh, gw = base_grid
    n = gh * gw
    keep = int(n * (1 - ratio))
    if not 0 < keep < n:
        raise ValueError(f"mask ratio {ratio} keeps {keep} of {n} patches; need 0 < kept < {n}")
    order = torch.rand(batch, n, generator=generator).argsort(dim=1)
    hidden = torch.ones(batch, n, dtype=torch.bool)
    hidden.scatter_(1, order[:, :keep], False)
    return hidden.view(batch, gh, gw).to(device)


def carry_mask(base_hidden: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling of a ``(B, gh, gw)`` base-grid mask to ``grid``: ``(B, GH, GW)`` bool."""
    if tuple(base_hidden.shape[-2:]) == tuple(grid):
        return base_hidden.bool()
    up = F.interpolate(base_hidden[:, None].float(), size=tuple(grid), mode="nearest")
    return up[:, 0] > 0.5


def keep_from_mask(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of exactly the visible patches of each sample, padded to the batch's largest count.

    Args:
        hidden: ``(B, N)`` (or ``(B, GH, GW)``) bool, True = hidden.

    Returns:
        ``(keep_idx, keep_valid)``: ``(B, K)`` long visible indices in ascending order followed by padding
        (index 0), and ``(B, K)`` bool, False on the padding; K = the largest visible count in the batch.
    """
    visible = ~hidden.reshape(hidden.shape[0], -1).bool()
    counts = visible.sum(dim=1)
    k = int(counts.max())
    if k == 0:
        raise ValueError("a mask hides every patch of every sample")
    # Stable sort puts visible positions first, each group in ascending index order.
    order = torch.sort((~visible).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    keep_valid = torch.arange(k, device=hidden.device)[None, :] < counts[:, None]
    keep_idx = torch.where(keep_valid, order, torch.zeros_like(order))
    return keep_idx, keep_valid


def patch_targets(imgs: torch.Tensor, patch_size: int = 16, *, norm_pix: bool = True) -> torch.Tensor:
    """Reconstruction targets ``(B, N, p*p*C)``: pixels per patch, normalised per patch when ``norm_pix``."""
    target = patchify(imgs.float(), patch_size)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    return target


def masked_mse(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Mean over hidden patches of the per-patch mean squared error; visible patches do not count."""
    hidden = hidden.reshape(hidden.shape[0], -1).to(pred.dtype)
    if pred.shape[:2] != hidden.shape or pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, target {tuple(target.shape)}, mask {tuple(hidden.shape)}"
        )
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    return (per_patch * hidden).sum() / hidden.sum().clamp_min(1.0)


def csr_loss(
    pred: torch.Tensor,
    imgs: torch.Tensor,
    hidden: torch.Tensor,
    *,
    patch_size: int = 16,
    norm_pix: bool = True,
) -> torch.Tensor:
    """CSR (and MAE) loss: normalised-pixel MSE of ``pred`` against ``imgs`` on hidden patches only.

    Args:
        pred: ``(B, N, p*p*C)`` predicted patches of the (enlarged) view.
        imgs: ``(B, C, H, W)`` that view, whose patch grid has N cells.
        hidden: ``(B, N)`` or ``(B, gh, gw)`` bool, True = hidden.
        patch_size: Patch side p.
        norm_pix: Normalise each target patch to zero mean and unit variance.

    Returns:
        The scalar loss.
    """
    return masked_mse(pred, patch_targets(imgs, patch_size, norm_pix=norm_pix), hidden)

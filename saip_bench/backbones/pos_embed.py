"""2-D resampling of absolute position embeddings (the SAIPv1 code interpolated the flat sequence in 1-D)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from saip_bench.errors import CheckpointError

# One interpolation for every place a grid changes (set_img_size, checkpoint loading, and timm's own
# on-the-fly resampling of dynamic_img_size models, which uses antialiased bicubic), so a checkpoint loaded
# at another size equals the same model resized after loading or fed that size directly.
POS_EMBED_MODE = "bicubic"
POS_EMBED_ANTIALIAS = True


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int],
    *,
    num_prefix_tokens: int = 1,
    mode: str = POS_EMBED_MODE,
    antialias: bool = POS_EMBED_ANTIALIAS,
) -> torch.Tensor:
    """Resample a ``(1, prefix + H*W, C)`` position embedding from ``old_grid`` to ``new_grid`` in 2-D.

    The prefix tokens (CLS, registers) are kept as they are; the patch part is reshaped to its
    ``(H, W)`` grid and interpolated with ``F.interpolate(mode=mode, align_corners=False, antialias=True)``.

    Args:
        pos_embed: The embedding, ``(1, N, C)``.
        new_grid: Target patch grid ``(rows, cols)``.
        old_grid: The grid ``pos_embed`` was made for; ``rows * cols`` must equal ``N - num_prefix_tokens``.
        num_prefix_tokens: Leading tokens that carry no grid position.
        mode: ``"bicubic"`` or ``"bilinear"``.
        antialias: Antialiased kernel (timm's default for pos_embed).

    Returns:
        The resampled embedding ``(1, prefix + new_rows * new_cols, C)`` in the input's dtype.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    n_patch = pos_embed.shape[1] - num_prefix_tokens
    if old_grid[0] * old_grid[1] != n_patch:
        raise ValueError(f"pos_embed has {n_patch} patch tokens, not a {old_grid[0]}x{old_grid[1]} grid")
    if old_grid == new_grid:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_grid, mode=mode, align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def infer_grid(n_patch: int, target_grid: tuple[int, int], *, source: str = "checkpoint") -> tuple[int, int]:
    """Guess the patch grid of a checkpoint's ``pos_embed`` from its token count.

    Foreign checkpoints do not record their input size. A grid with the target's aspect ratio wins (a
    256x128 checkpoint loaded at 384x192), then a square one (ImageNet MAE/DINO at 224x224), then the
    2:1 person-crop shape (SAIPv1 at 256x128).

    Raises:
        CheckpointError: No plausible grid has ``n_patch`` cells.
    """
    rows, cols = target_grid
    if rows * cols == n_patch:
        return rows, cols
    ratio = rows / cols
    h = round(math.sqrt(n_patch * ratio))
    if h > 0 and n_patch % h == 0 and abs(h / (n_patch // h) - ratio) < 1e-6:
        return h, n_patch // h
    side = math.isqrt(n_patch)
    if side * side == n_patch:
        return side, side
    h = math.isqrt(n_patch * 2)
    if h * h == n_patch * 2:
        return h, h // 2
    raise CheckpointError(
        f"{source}: cannot tell the patch grid of a pos_embed with {n_patch} patch tokens; "
        "save it in saip format with its img_size (saip convert --img-size HxW)"
    )

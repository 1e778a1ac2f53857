"""2-D position-embedding resampling and grid inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from saip_bench.backbones.pos_embed import infer_grid, resample_pos_embed
from saip_bench.errors import CheckpointError


def test_resample_matches_interpolating_the_grid_and_keeps_prefix_tokens() -> None:
    pos = torch.randn(1, 2 + 16 * 8, 12)
    out = resample_pos_embed(pos, (24, 8), (16, 8), num_prefix_tokens=2)
    grid = pos[:, 2:].reshape(1, 16, 8, 12).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(24, 8), mode="bicubic", align_corners=False, antialias=True)
    assert out.shape == (1, 2 + 24 * 8, 12)
    assert torch.equal(out[:, :2], pos[:, :2])
    torch.testing.assert_close(out[:, 2:], expect.permute(0, 2, 3, 1).reshape(1, -1, 12))


def test_resample_is_2d_not_1d() -> None:
    # A pattern that varies only along rows must keep each row constant after resampling the columns.
    rows = torch.arange(16.0).repeat_interleave(8)
    pos = torch.cat([torch.zeros(1), rows]).reshape(1, -1, 1)
    out = resample_pos_embed(pos, (16, 12), (16, 8))[0, 1:, 0].reshape(16, 12)
    torch.testing.assert_close(out, torch.arange(16.0)[:, None].expand(16, 12))


def test_same_grid_is_returned_unchanged_and_bad_grid_is_rejected() -> None:
    pos = torch.randn(1, 129, 4)
    assert resample_pos_embed(pos, (16, 8), (16, 8)) is pos
    with pytest.raises(ValueError, match="128 patch tokens"):
        resample_pos_embed(pos, (16, 8), (14, 14))


@pytest.mark.parametrize(
    ("n", "target", "grid"),
    [(128, (16, 8), (16, 8)), (196, (16, 8), (14, 14)), (128, (24, 8), (16, 8)), (288, (16, 8), (24, 12))],
)
def test_infer_grid(n: int, target: tuple[int, int], grid: tuple[int, int]) -> None:
    assert infer_grid(n, target) == grid


def test_infer_grid_gives_up_with_a_clear_error() -> None:
    with pytest.raises(CheckpointError, match="ckpt.pth: cannot tell the patch grid"):
        infer_grid(131, (16, 8), source="ckpt.pth")

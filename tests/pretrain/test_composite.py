"""The multi-person composite: sizes, non-overlapping pastes, masks that mark exactly the changed pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.errors import DataFormatError
from saip_bench.pretrain.composite import (
    CompositeMaker,
    background_from_folder,
    background_from_sequence,
    paste_positions,
)
from saip_bench.pretrain.views import INSTANCE, REGION, MultiCropViews, SaipViews, collate_views, sample_rng


def _img(seed: int, size=(96, 48)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))


def test_paste_positions_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(200):
        (t1, l1), (t2, l2) = paste_positions((224, 224), (128, 64), 2, rng)
        assert 0 <= t1 <= 96 and 0 <= l1 <= 160 and 0 <= t2 <= 96 and 0 <= l2 <= 160
        assert t1 + 128 <= t2 or t2 + 128 <= t1 or l1 + 64 <= l2 or l2 + 64 <= l1
    with pytest.raises(ValueError):
        paste_positions((100, 100), (60, 60), 2, rng)


def test_masks_match_changed_pixels_and_do_not_overlap():
    maker = CompositeMaker(background_from_sequence([_img(1, (200, 260))]), alpha=0.7)
    persons = torch.full((2, 3, 128, 64), 3.0)
    persons[1] = -3.0
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    background = maker.background_tensor(rng_a)
    composite, masks = maker(persons, rng_b)
    assert composite.shape == (3, 224, 224) and masks.shape == (2, 224, 224)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert masks.sum(dim=(1, 2)).tolist() == [128 * 64, 128 * 64]
    assert not (masks[0].bool() & masks[1].bool()).any()
    changed = (composite - background).abs().amax(dim=0) > 1e-6
    assert torch.equal(changed, masks.sum(0) > 0)
    inside = masks[0].bool()
    torch.testing.assert_close(composite[:, inside], 0.7 * 3.0 + 0.3 * background[:, inside])


def test_background_sources(tmp_path):
    with pytest.raises(DataFormatError):
        background_from_folder(tmp_path)
    (tmp_path / "sub").mkdir()
    _img(0, (300, 300)).save(tmp_path / "sub" / "a.png")
    _img(1, (200, 100)).save(tmp_path / "sub" / "b.bmp")  # not torchvision's: decoded by PIL
    draw = background_from_folder(tmp_path)
    drawn = {tuple(draw(np.random.default_rng(seed)).shape) for seed in range(20)}
    assert drawn == {(3, 300, 300), (3, 200, 100)}
    drawn = background_from_sequence([_img(2, (40, 30))])(np.random.default_rng(0))
    assert drawn.dtype == torch.uint8 and drawn.shape == (3, 40, 30)  # PIL items arrive as tensors too
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    draw = background_from_sequence([tmp_path / "bad.jpg"])
    with pytest.raises(DataFormatError, match="bad.jpg"):
        draw(np.random.default_rng(0))


def test_saip_views_paste_the_two_last_locals():
    maker = CompositeMaker(background_from_sequence([_img(1, (224, 224))]), alpha=1.0)
    views = SaipViews(MultiCropViews(local_crops_number=3), composite=maker)
    out = views(_img(2), sample_rng(0, 0, 0))
    assert out["composite"].shape == (3, 224, 224) and out["masks"].shape == (2, 224, 224)
    for which, local in ((INSTANCE, -1), (REGION, -2)):
        ys, xs = out["masks"][which].nonzero(as_tuple=True)
        top, left = int(ys.min()), int(xs.min())
        # alpha=1: the pasted pixels are the local view itself.
        torch.testing.assert_close(
            out["composite"][:, top : top + 128, left : left + 64], out["locals"][local]
        )
    batch = collate_views([out, views(_img(3), sample_rng(0, 0, 1))])
    assert batch["composite"].shape == (2, 3, 224, 224) and batch["masks"].shape == (2, 2, 224, 224)

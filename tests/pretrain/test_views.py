"""Multi-crop views: shapes, the small copy of global view 1, seeding, collation, rescale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.pretrain.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESCALE_CHOICES,
    MultiCropViews,
    SaipViews,
    collate_views,
    draw_rescale_factors,
    random_resized_crop_box,
    rescale,
    rescaled_size,
    sample_rng,
    view_chunk,
)


def _person(seed: int = 0, size=(96, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_view_shapes_with_recipe_sizes():
    views = MultiCropViews(local_crops_number=4)(_person(), sample_rng(0, 0, 0))
    assert views["globals"].shape == (2, 3, 256, 128)
    assert views["locals"].shape == (4, 3, 128, 64)
    assert views["globals"].dtype == torch.float32


def test_sizes_and_counts_are_configurable():
    mc = MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=3)
    views = mc(_person(), sample_rng(0, 0, 0))
    assert views["globals"].shape == (2, 3, 64, 32) and views["locals"].shape == (3, 3, 32, 16)
    assert MultiCropViews(local_crops_number=0)(_person(), sample_rng(0, 0, 1))["locals"].shape[0] == 0


def test_last_local_is_global_one_resized():
    mc = MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=3)
    views = mc(_person(), sample_rng(1, 0, 0))
    small = torch.nn.functional.avg_pool2d(views["globals"][0][None], 2)[0]
    torch.testing.assert_close(views["locals"][-1], small, atol=1e-4, rtol=0)
    assert not torch.allclose(
        views["locals"][-1], torch.nn.functional.avg_pool2d(views["globals"][1][None], 2)[0]
    )


def test_outputs_are_imagenet_normalised():
    mc = MultiCropViews(
        global_size=(64, 32),
        local_size=(32, 16),
        local_crops_number=2,
        jitter_p=0.0,
        grayscale_p=0.0,
        global_blur_p=(0.0, 0.0),
        global_solarize_p=(0.0, 0.0),
        local_blur_p=0,
    )
    white = Image.new("RGB", (48, 96), (255, 255, 255))
    g = mc(white, sample_rng(0, 0, 0))["globals"]
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(g[:, :, 10, 10], expected.expand(2, 3))


def test_seeded_by_the_rng_only():
    mc = MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=3)
    img = _person()
    torch.manual_seed(1)
    np.random.seed(1)
    a = mc(img, sample_rng(5, 2, 7))
    torch.manual_seed(2)
    np.random.seed(2)
    b = mc(img, sample_rng(5, 2, 7))
    c = mc(img, sample_rng(5, 2, 8))
    torch.testing.assert_close(a["locals"], b["locals"])
    torch.testing.assert_close(a["globals"], b["globals"])
    assert not torch.allclose(a["locals"], c["locals"])


def test_crop_box_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(50):
        top, left, h, w = random_resized_crop_box(128, 256, (0.8, 1.0), (0.4, 0.6), rng)
        assert top >= 0 and left >= 0 and top + h <= 256 and left + w <= 128
        assert 0.35 <= w / h <= 0.65


def test_collate_is_view_major_and_chunks_back():
    mc = MultiCropViews(global_size=(32, 16), local_size=(16, 16), local_crops_number=3)
    samples = [mc(_person(i), sample_rng(0, 0, i)) for i in range(4)]
    batch = collate_views(samples)
    assert batch["globals"].shape == (8, 3, 32, 16) and batch["locals"].shape == (12, 3, 16, 16)
    for v in range(3):
        torch.testing.assert_close(
            view_chunk(batch["locals"], v, 4), torch.stack([s["locals"][v] for s in samples])
        )
    torch.testing.assert_close(batch["globals"][5], samples[1]["globals"][1])


def test_saip_views_need_two_locals_for_the_composite():
    with pytest.raises(ValueError):
        SaipViews(MultiCropViews(local_crops_number=1), composite=lambda persons, rng: None)


def test_rescale_factors_are_seeded_and_from_the_choices():
    a = draw_rescale_factors(torch.Generator().manual_seed(3), n=20)
    b = draw_rescale_factors(torch.Generator().manual_seed(3), n=20)
    assert a == b and set(a) <= set(RESCALE_CHOICES) and len(set(a)) > 1


@pytest.mark.parametrize(
    ("factor", "size"), [(0.75, (96, 48)), (1.25, (160, 80)), (1.125, (144, 80)), (0.875, (112, 64))]
)
def test_rescale_rounds_to_patch_multiples(factor, size):
    assert rescaled_size((128, 64), factor, 16) == size
    assert rescale(torch.randn(2, 3, 128, 64), factor).shape == (2, 3, *size)

"""Multi-crop views: shapes, the small copy of global view 1, seeding, augmentations, collation, rescale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.pretrain import image_ops
from saip_bench.pretrain.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESCALE_CHOICES,
    MultiCropViews,
    PhotometricAugment,
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


def _float_image(seed: int = 0, size=(24, 16)) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (3, *size)).astype(np.float32))


OFF = {"flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("flip_p", lambda x: x.flip(-1)),
        ("grayscale_p", image_ops.to_grayscale),
        ("solarize_p", image_ops.solarize),
        ("blur_p", None),
        ("jitter_p", None),
    ],
)
def test_each_augmentation_applies_at_p1_and_not_at_p0(name, expected):
    x = _float_image(1)
    assert torch.equal(PhotometricAugment(**OFF)(x.clone(), np.random.default_rng(0)), x)
    out = PhotometricAugment(**{**OFF, name: 1.0})(x.clone(), np.random.default_rng(0))
    if expected is not None:
        torch.testing.assert_close(out, expected(x))
    else:
        assert out.shape == x.shape and not torch.allclose(out, x, atol=1.0)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0
    zero_jitter = PhotometricAugment(**{**OFF, "jitter_p": 1.0}, jitter=(0.0, 0.0, 0.0, 0.0))
    assert torch.equal(zero_jitter(x.clone(), np.random.default_rng(0)), x)


def test_jitter_is_torchvision_colorjitter_in_the_drawn_order():
    """Factors drawn in the order brightness, contrast, saturation, hue, then the order they apply in."""
    aug = PhotometricAugment(**{**OFF, "jitter_p": 1.0})
    ops_by_index = [
        image_ops.adjust_brightness,
        image_ops.adjust_contrast,
        image_ops.adjust_saturation,
        image_ops.adjust_hue,
    ]
    orders = set()
    for seed in range(6):
        x = _float_image(2) * 0.5 + 100  # mid-range: the clamps matter only for some orders
        rng = np.random.default_rng(seed)
        rng.random(), rng.random()  # the flip and jitter coins
        factors = [
            rng.uniform(0.6, 1.4),
            rng.uniform(0.6, 1.4),
            rng.uniform(0.8, 1.2),
            rng.uniform(-0.1, 0.1),
        ]
        order = rng.permutation(4)
        orders.add(tuple(order))
        expected = x.clone()
        for i in order:
            expected = ops_by_index[i](expected, float(factors[i]))
        torch.testing.assert_close(aug(x.clone(), np.random.default_rng(seed)), expected)
    assert len(orders) > 1


def test_views_value_range_and_pil_or_tensor_input():
    mc = MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=3)
    img = _person(4)
    a = mc(img, sample_rng(0, 0, 3))
    b = mc(image_ops.to_uint8_tensor(img), sample_rng(0, 0, 3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    for views in a.values():
        per_channel = views.transpose(0, 1).reshape(3, -1)
        assert (per_channel.amin(1) >= low - 1e-5).all() and (per_channel.amax(1) <= high + 1e-5).all()


def test_make_batch_equals_collating_the_samples():
    from saip_bench.pretrain.composite import CompositeMaker, background_from_sequence

    views = SaipViews(
        MultiCropViews(global_size=(32, 16), local_size=(16, 8), local_crops_number=3),
        CompositeMaker(background_from_sequence([_person(9)]), size=(32, 32), person_size=(16, 8)),
    )
    imgs = [_person(i) for i in range(3)]
    expected = collate_views([views(im, sample_rng(1, 2, i)) for i, im in enumerate(imgs)])
    made = views.make_batch(3, ((im, sample_rng(1, 2, i)) for i, im in enumerate(imgs)))
    assert len(made) == 3 and collate_views(made).keys() == expected.keys()
    for key, value in collate_views(made).items():
        assert value.shape == views.batch_shapes(3)[key] and torch.equal(value, expected[key]), key
    assert torch.equal(collate_views(list(made))["locals"], expected["locals"])  # any collate sees samples
    with pytest.raises(ValueError, match="batch_size"):
        views.make_batch(2, ((im, sample_rng(0, 0, 0)) for im in imgs))


def test_make_batch_reuses_memory_only_once_nothing_holds_it():
    views = SaipViews(MultiCropViews(global_size=(32, 16), local_size=(16, 8), local_crops_number=2))
    imgs = [_person(i) for i in range(2)]

    def batch(epoch):
        return collate_views(
            views.make_batch(2, ((im, sample_rng(0, epoch, i)) for i, im in enumerate(imgs)))
        )

    first = batch(0)
    kept = first["globals"].clone()
    second = batch(1)  # the first is still held: other memory, its contents untouched
    assert first["globals"].data_ptr() != second["globals"].data_ptr()
    assert torch.equal(first["globals"], kept) and not torch.equal(second["globals"], kept)
    ptr, view_of_first = first["globals"].data_ptr(), first["locals"][1:]
    del first
    third = batch(2)  # first's globals are free (its locals live on in a view)
    assert third["globals"].data_ptr() == ptr
    assert view_of_first.data_ptr() not in {t.data_ptr() for t in third.values()}
    assert torch.equal(third["globals"], batch(2)["globals"])  # reused memory, same views

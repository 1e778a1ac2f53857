"""``views.output: crops``: the loader sends crops and draws, the training device finishes the views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from saip_bench.pretrain.composite import CompositeMaker
from saip_bench.pretrain.device_views import augment_tensor, finish_views, is_crops_batch
from saip_bench.pretrain.views import (
    DRAW_FIELDS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropViews,
    PhotometricAugment,
    SaipViews,
    ViewDraws,
    collate_views,
    normalize_views,
    sample_rng,
)


def _img(seed: int, size: tuple[int, int] = (96, 48)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, *size, generator=g) * 255).to(torch.uint8)


def _views(output: str, *, composite: bool = True, local_crops: int = 4) -> SaipViews:
    imgs = [_img(10 + i) for i in range(3)]
    maker = CompositeMaker(lambda r: imgs[int(r.integers(3))], size=(64, 64), person_size=(32, 16))
    return SaipViews(
        MultiCropViews(
            global_size=(64, 32), local_size=(32, 16), local_crops_number=local_crops, output=output
        ),
        maker if composite else None,
    )


def _batch(views: SaipViews, n: int = 4, epoch: int = 0) -> dict[str, torch.Tensor]:
    items = ((_img(i), sample_rng(3, epoch, i)) for i in range(n))
    return collate_views(views.make_batch(n, items))


@pytest.mark.parametrize(
    "draws",
    [
        ViewDraws(flip=True),
        ViewDraws(jitter=((0, 1.3),)),
        ViewDraws(jitter=((0, 0.7),)),
        ViewDraws(jitter=((1, 1.35),)),
        ViewDraws(jitter=((1, 0.65),)),
        ViewDraws(jitter=((2, 1.2),)),
        ViewDraws(jitter=((2, 0.8),)),
        ViewDraws(jitter=((3, 0.09),)),
        ViewDraws(jitter=((3, -0.05),)),
        ViewDraws(jitter=((2, 1.15), (1, 0.7), (3, 0.04), (0, 1.3))),
        ViewDraws(grey=True),
        ViewDraws(sigma=0.4),
        ViewDraws(sigma=1.7),
        ViewDraws(solarize=True),
        ViewDraws(True, ((1, 1.2), (0, 0.8), (2, 0.9), (3, -0.08)), True, 1.1, True),
    ],
)
def test_each_operation_on_the_device_equals_the_cpu_one(draws):
    x = _img(1, (40, 24)).float()
    expected = PhotometricAugment().apply(x.clone(), draws)
    row = draws.encode(torch.empty(DRAW_FIELDS))
    got = augment_tensor(x[None].clone(), row[None])[0]
    torch.testing.assert_close(got, expected.expand_as(got), atol=2e-3, rtol=0)  # of 255 grey levels
    if draws != ViewDraws():
        assert not torch.allclose(got, x, atol=0.5)  # the operation did something


def test_views_of_different_draws_in_one_call_each_get_their_own():
    """One batched call equals one call per view (per-view kernels, flips and clamps kept apart)."""
    aug = PhotometricAugment(blur_p=0.5, solarize_p=0.3)
    rng = np.random.default_rng(4)
    draws = [aug.draw(rng) for _ in range(12)]
    assert len({d.sigma > 0 for d in draws}) == 2 and len({d.flip for d in draws}) == 2
    x = torch.stack([_img(20 + i, (32, 16)).float() for i in range(12)])
    rows = torch.stack([d.encode(torch.empty(DRAW_FIELDS)) for d in draws])
    together = augment_tensor(x.clone(), rows)
    for i in range(12):
        alone = augment_tensor(x[i : i + 1].clone(), rows[i : i + 1])[0]
        torch.testing.assert_close(together[i], alone, atol=2e-3, rtol=0)


@pytest.mark.parametrize(("composite", "local_crops"), [(True, 4), (False, 3), (False, 0)])
def test_finished_crops_equal_the_float32_views(composite, local_crops):
    """Same draws, same crops: the device-finished views are the CPU's float32 views to float rounding."""
    crops = _batch(_views("crops", composite=composite, local_crops=local_crops))
    assert is_crops_batch(crops) and crops["globals"].dtype == torch.uint8
    assert crops["draws"].shape == (4, 2 + max(local_crops - 1, 0) + composite, DRAW_FIELDS)
    finished = normalize_views(crops)
    expected = _batch(_views("float32", composite=composite, local_crops=local_crops))
    assert set(finished) == set(expected)
    for key, t in expected.items():
        assert finished[key].dtype == torch.float32 and finished[key].shape == t.shape, key
        torch.testing.assert_close(finished[key], t, atol=2e-5, rtol=0, msg=key)


def test_crops_made_sample_by_sample_or_in_a_worker_are_the_same_batch():
    views = _views("crops")
    in_place = _batch(views)
    one_by_one = collate_views([views(_img(i), sample_rng(3, 0, i)) for i in range(4)])
    assert set(one_by_one) == set(in_place)
    for key in in_place:
        assert torch.equal(one_by_one[key], in_place[key]), key

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitems__(self, keys):
            return views.make_batch(len(keys), ((_img(i), sample_rng(3, 0, i)) for i in keys))

    loader = DataLoader(Items(), batch_size=4, num_workers=1, collate_fn=collate_views)
    from_worker = next(iter(loader))
    for key in in_place:
        assert torch.equal(from_worker[key], in_place[key]), key


def test_finishing_is_not_autocast_and_leaves_the_input_batch():
    crops = _batch(_views("crops"))
    before = {k: t.clone() for k, t in crops.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        finished = finish_views(crops, IMAGENET_MEAN, IMAGENET_STD)
    assert all(finished[k].dtype == torch.float32 for k in ("globals", "locals", "composite", "masks"))
    assert all(torch.equal(crops[k], before[k]) for k in before)
    assert "draws" not in finished and "paste" not in finished


def test_a_saip_forward_reads_crops():
    """One SAIP forward from crops: finite losses, the float32 views' to rounding."""
    from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
    from saip_bench.pretrain.methods import resolve

    settings = ArchSettings(
        img_size=(64, 32),
        vit_kwargs={"depth": 2, "embed_dim": 64, "num_heads": 2},
        mid_block=1,
        out_dim=256,
        hidden_dim=64,
        bottleneck_dim=32,
        csr_decoder_dim=64,
        csr_decoder_depth=1,
        csr_decoder_heads=2,
        css_decoder_dim=64,
        css_decoder_heads=2,
    )
    losses = {}
    for output in ("crops", "float32"):
        torch.manual_seed(0)
        model = MetaArch(resolve("saip", None, {}), settings).train()
        with torch.no_grad():
            losses[output] = {k: float(v) for k, v in model(_batch(_views(output)), 0).items()}
    assert set(losses["crops"]) >= {"loss", "csm", "csr", "css"}
    assert all(np.isfinite(v) for v in losses["crops"].values())
    for key, value in losses["float32"].items():
        assert losses["crops"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key

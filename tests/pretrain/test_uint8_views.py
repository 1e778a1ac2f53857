"""Quantised views (``views.output: uint8``): the float views rounded, normalised where the model runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from saip_bench.errors import ConfigError
from saip_bench.pretrain.composite import CompositeMaker
from saip_bench.pretrain.image_ops import ColourMap, quantize, to_uint8_
from saip_bench.pretrain.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropViews,
    SaipViews,
    collate_views,
    normalize_views,
    sample_rng,
)

STD = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255.0  # one normalised unit in grey levels


def _img(seed: int, size: tuple[int, int] = (96, 48)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, *size, generator=g) * 255).to(torch.uint8)


def _views(output: str) -> SaipViews:
    imgs = [_img(10 + i) for i in range(3)]
    return SaipViews(
        MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=4, output=output),
        CompositeMaker(lambda r: imgs[int(r.integers(3))], size=(64, 64), person_size=(32, 16)),
    )


def test_quantize_rounds_to_the_nearest_level_clamps_and_broadcasts_grey():
    x = torch.tensor([[[-3.0, 0.49, 0.5, 1.5, 254.4, 254.6, 300.0]]])
    out = torch.empty(1, 1, 7, dtype=torch.uint8)
    quantize(x.clone(), out=out)
    assert out.flatten().tolist() == [0, 0, 1, 2, 254, 255, 255]
    grey, rgb = torch.full((1, 2, 2), 7.6), torch.empty(3, 2, 2, dtype=torch.uint8)
    assert quantize(grey, out=rgb).unique().tolist() == [8]
    # pending colour operations are folded into the rounding pass: the same as applying them first
    x = torch.rand(3, 8, 4) * 255
    colour = ColourMap()
    colour.scale(0.8)
    colour.saturate(0.5)
    folded, applied = torch.empty(3, 8, 4, dtype=torch.uint8), torch.empty(3, 8, 4, dtype=torch.uint8)
    quantize(x.clone(), out=folded, colour=colour)
    assert colour.is_identity()
    step = ColourMap()
    step.scale(0.8)
    step.saturate(0.5)
    quantize(step.apply(x.clone()), out=applied)
    assert (folded.int() - applied.int()).abs().max() <= 1  # float rounding at a half level at most


def test_numpy_cast_writes_the_bytes_torch_copy_writes_into_strided_slots():
    x = torch.rand(3, 16, 8) * 255
    batch = torch.zeros(2, 3, 16, 8, dtype=torch.uint8)
    slot = batch.permute(1, 0, 2, 3)[:, 1]  # a non-contiguous slot, as view-major batches give
    to_uint8_(x, slot)
    assert torch.equal(batch[1], x.to(torch.uint8)) and batch[0].eq(0).all()


@pytest.mark.parametrize("index", range(4))
def test_uint8_views_are_the_float_views_rounded(index):
    floats = _views("float32")(_img(index), sample_rng(0, 1, index))
    levels = _views("uint8")(_img(index), sample_rng(0, 1, index))
    assert all(levels[k].dtype == torch.uint8 for k in levels)
    back = normalize_views(levels)
    assert all(back[k].dtype == torch.float32 for k in back)
    for key in ("globals", "locals"):
        # the same draws: each level within half a grey level of the float view (plus float rounding)
        assert ((floats[key] - back[key]).abs() * STD).max() <= 0.5 + 1e-3, key
    # the composite blends rounded views and rounds again: within one level
    assert ((floats["composite"] - back["composite"]).abs() * STD).max() <= 1.0 + 1e-3
    assert torch.equal(back["masks"], floats["masks"])


def test_make_batch_in_uint8_equals_collating_the_samples():
    views = _views("uint8")
    imgs = [_img(i) for i in range(3)]
    made = collate_views(views.make_batch(3, ((im, sample_rng(1, 2, i)) for i, im in enumerate(imgs))))
    expected = collate_views([views(im, sample_rng(1, 2, i)) for i, im in enumerate(imgs)])
    assert made.keys() == expected.keys()
    for key in made:
        assert made[key].dtype == torch.uint8 and torch.equal(made[key], expected[key]), key


def test_normalize_views_leaves_a_float_batch_alone_and_normalises_levels():
    floats = {"globals": torch.zeros(2, 3, 4, 4), "masks": torch.ones(1, 2, 4, 4)}
    assert normalize_views(floats) is floats
    levels = {
        "globals": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8),
        "masks": torch.ones(1, 2, 4, 4, dtype=torch.uint8),
    }
    out = normalize_views(levels)
    expected = [(1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert torch.allclose(out["globals"][0, :, 0, 0], torch.tensor(expected))
    assert out["masks"].dtype == torch.float32 and out["masks"].eq(1.0).all()
    assert levels["globals"].dtype == torch.uint8  # the caller's batch is not changed


def test_the_model_reads_a_uint8_batch_as_its_normalised_floats():
    from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
    from saip_bench.pretrain.methods import resolve

    tiny = {
        "img_size": (64, 32), "vit_kwargs": {"depth": 3, "embed_dim": 32, "num_heads": 2}, "mid_block": 1,
        "out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16, "csr_decoder_dim": 32, "csr_decoder_depth": 1,
        "csr_decoder_heads": 2, "css_decoder_dim": 32, "css_decoder_heads": 2,
    }  # fmt: skip

    def model() -> MetaArch:  # a fresh one each time: a forward moves the teacher's centres
        torch.manual_seed(0)
        return MetaArch(resolve("saip", None, {}), ArchSettings(**tiny))

    imgs = [_img(i) for i in range(3)]
    views = _views("uint8")
    levels = collate_views([views(im, np.random.default_rng(i)) for i, im in enumerate(imgs)])
    a, b = model()(levels, 0), model()(normalize_views(levels), 0)
    assert {"loss", "csm", "csr", "css"} <= set(a) and set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_loader_worker_sends_uint8_batches_through_shared_memory(tmp_path):
    from PIL import Image

    from saip_bench.pretrain.config import load_config
    from saip_bench.pretrain.data.dataset import PretrainDataset

    for i in range(4):
        Image.fromarray(_img(i, (48, 24)).permute(1, 2, 0).numpy()).save(tmp_path / f"p{i}.jpg", quality=90)
    cfg = load_config("smoke_cpu", ["views.local_crops=2"])
    assert cfg.views.output == "uint8"  # the default
    ds = PretrainDataset.from_config(tmp_path, cfg, seed=5)
    keys = [[(0, 0), (0, 1)], [(0, 2), (0, 3)]]
    in_worker = list(DataLoader(ds, batch_sampler=keys, num_workers=1, collate_fn=collate_views))
    here = [collate_views(ds.__getitems__(k)) for k in keys]
    for got, expected in zip(in_worker, here, strict=True):
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key].dtype == torch.uint8 and torch.equal(got[key], expected[key]), key
    with pytest.raises(ConfigError, match="views.output='float16'"):
        PretrainDataset.from_config(tmp_path, load_config("smoke_cpu", ["views.output=float16"]), seed=5)

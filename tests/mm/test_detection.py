"""The mmdet glue both detector tasks share: letterbox + box mapping, data samples, collate, the loss sum,
and the template's engine seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD
from saip_bench.mm.detection import (
    DetectorTask,
    collate,
    det_sample,
    draw_flip,
    letterbox,
    map_boxes,
    sum_losses,
)


def _image(width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_letterbox_fits_keeps_the_ratio_and_pads_with_zeros() -> None:
    img = _image(101, 50)  # wide: the width fills the canvas, 64 / 101 * 50 = 31.68 rows -> 32
    view = letterbox(img, (48, 64))
    assert view.image.shape == (3, 48, 64) and view.pad_shape == (48, 64) and view.ori_shape == (50, 101)
    assert view.img_shape == (32, 64) and not view.flip
    assert view.scale_factor == (64 / 101, 32 / 50)  # mmdet's (new_w / w, new_h / h), per axis
    assert torch.all(view.image[:, 32:, :] == 0)
    resized = np.asarray(img.resize((64, 32), Image.BILINEAR), dtype=np.float32) / 255.0
    expected = (resized - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(
        IMAGENET_STD, dtype=np.float32
    )
    np.testing.assert_allclose(view.image[:, :32, :].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    mirrored = letterbox(img, (48, 64), flip=True)
    assert mirrored.flip and torch.equal(mirrored.image[:, :32], view.image[:, :32].flip(-1))


def test_boxes_follow_the_resize_per_axis_and_the_flip() -> None:
    view = letterbox(_image(200, 100), (64, 96))  # 96 / 200 = 0.48 -> 96 x 48
    assert view.img_shape == (48, 96) and view.scale_factor == (0.48, 0.48)
    odd = letterbox(_image(101, 50), (48, 64))
    boxes = np.array([[10.0, 5.0, 30.0, 25.0]], dtype=np.float32)
    w, h = 64 / 101, 32 / 50
    np.testing.assert_allclose(map_boxes(boxes, odd).numpy(), [[10 * w, 5 * h, 30 * w, 25 * h]], rtol=1e-6)
    flipped = letterbox(_image(101, 50), (48, 64), flip=True)
    np.testing.assert_allclose(
        map_boxes(boxes, flipped).numpy(), [[64 - 30 * w, 5 * h, 64 - 10 * w, 25 * h]], rtol=1e-6
    )
    assert map_boxes(np.zeros((0, 4)), odd).shape == (0, 4)


def test_data_samples_carry_what_the_heads_read_and_collate_keeps_them() -> None:
    pytest.importorskip("mmdet")
    view = letterbox(_image(101, 50), (48, 64), flip=True)
    sample = det_sample(view, 7, img_path="a.jpg")
    meta = sample.metainfo
    assert meta["img_id"] == 7 and meta["img_path"] == "a.jpg" and meta["ori_shape"] == (50, 101)
    assert meta["img_shape"] == (32, 64) and meta["pad_shape"] == meta["batch_input_shape"] == (48, 64)
    assert (
        meta["scale_factor"] == view.scale_factor and meta["flip"] and meta["flip_direction"] == "horizontal"
    )
    images, samples = collate([(view.image, sample), (view.image * 2, sample)])
    assert images.shape == (2, 3, 48, 64) and samples == [sample, sample]


def test_flip_draws_follow_the_seed_and_probability_zero_draws_nothing() -> None:
    torch.manual_seed(3)
    first = [draw_flip(0.5) for _ in range(20)]
    torch.manual_seed(3)
    assert [draw_flip(0.5) for _ in range(20)] == first and 0 < sum(first) < 20
    state = torch.get_rng_state()
    assert not draw_flip(0.0) and torch.equal(torch.get_rng_state(), state)
    assert all(draw_flip(1.0) for _ in range(5))


def test_sum_losses_adds_levels_and_terms_and_skips_metrics() -> None:
    losses = {
        "loss_cls": [torch.tensor(1.0), torch.tensor(2.0)],  # per-level list
        "loss_bbox": torch.tensor([0.5, 0.25]),  # a non-scalar term is summed too
        "acc": torch.tensor(93.0),  # a metric, not a loss
    }
    out = sum_losses(losses)
    assert set(out) == {"loss", "loss_cls", "loss_bbox"}
    assert float(out["loss_cls"]) == 3.0 and float(out["loss_bbox"]) == 0.75 and float(out["loss"]) == 3.75


def test_the_engine_runs_one_past_the_request_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The detection and fashion numbers were trained with fit(seed=seed + 1) before the template."""
    import saip_bench.engine as engine
    from saip_bench.evaluate.adapter import EvalRequest

    seen: dict[str, Any] = {}

    def fake_fit(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return type("Result", (), {"metrics": {"AP": 1.0}})()

    class Tiny(DetectorTask):
        name = "tiny"

        def train_loader(self, request: EvalRequest, data: Any) -> list:
            return []

    monkeypatch.setattr(engine, "fit", fake_fit)
    request = EvalRequest(
        task="tiny", dataset="x", data_dir=tmp_path, protocol="finetune", budget="smoke",
        recipe={"train": {"epochs": 1}}, img_size=(32, 32), run_dir=tmp_path, seed=5, primary_metric="AP",
    )  # fmt: skip
    metrics, _ = Tiny().finetune(request, torch.nn.Linear(2, 2), None)
    assert metrics == {"AP": 1.0} and seen["seed"] == 6

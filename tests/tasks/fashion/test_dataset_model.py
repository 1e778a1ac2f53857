"""Fashion inputs (resize, flip, pad) and the Mask R-CNN built through mmdet: shapes, RoIAlign mode, layer
decay groups, one training step and a prediction in original pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from saip_bench.configs import config_path
from saip_bench.engine import build_param_groups
from saip_bench.mm.detection import collate, detector_losses
from saip_bench.tasks.fashion.adapter import predictions_to_results
from saip_bench.tasks.fashion.data import load_split
from saip_bench.tasks.fashion.dataset import FashionDataset
from saip_bench.tasks.fashion.model import build_mask_rcnn, mask_rcnn_config

SIZE = (96, 96)
DEFAULTS = OmegaConf.to_container(OmegaConf.load(config_path("evaluate/defaults/fashion.yaml")))
SMALL = {**DEFAULTS["model"], "strides": [8, 16, 32], "channels": 32, "rpn_pre_nms": 100, "rpn_proposals": 50,
         "rcnn_samples": 32}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Any:
    from saip_bench.backbones import load_backbone

    torch.manual_seed(0)
    return build_mask_rcnn(load_backbone("random:test_vit", img_size=SIZE), 46, SMALL, DEFAULTS["eval"])


def _dataset(root: Path, flip: float) -> FashionDataset:
    split = load_split(root, "train")
    return FashionDataset(split.images, [c["id"] for c in split.categories], SIZE, flip=flip)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_items_keep_boxes_and_masks_together(fashion_root: Path, flip: float) -> None:
    image, sample = _dataset(fashion_root, flip)[0]
    meta = sample.metainfo
    new_h, new_w = meta["img_shape"]
    assert image.shape == (3, *SIZE) and meta["pad_shape"] == SIZE and meta["flip"] == bool(flip)
    height, width = meta["ori_shape"]
    assert meta["scale_factor"] == (new_w / width, new_h / height)  # mmdet's, as the detection task's
    assert (
        max(new_h, new_w) == 96
        and torch.all(image[:, new_h:, :] == 0)
        and torch.all(image[:, :, new_w:] == 0)
    )
    gt = sample.gt_instances
    assert len(gt) > 0 and gt.masks.masks.shape == (len(gt), *SIZE)
    for box, mask in zip(gt.bboxes.numpy(), gt.masks.masks, strict=True):
        ys, xs = np.nonzero(mask)
        assert abs(xs.min() - box[0]) <= 2.5 and abs(xs.max() + 1 - box[2]) <= 2.5
        assert abs(ys.min() - box[1]) <= 2.5 and abs(ys.max() + 1 - box[3]) <= 2.5


def test_flip_mirrors_the_unpadded_image(fashion_root: Path) -> None:
    (plain, a), (flipped, b) = _dataset(fashion_root, 0.0)[0], _dataset(fashion_root, 1.0)[0]
    new_h, new_w = a.metainfo["img_shape"]
    assert torch.allclose(plain[:, :new_h, :new_w].flip(-1), flipped[:, :new_h, :new_w])
    assert np.array_equal(
        a.gt_instances.masks.masks[:, :, :new_w][:, :, ::-1], b.gt_instances.masks.masks[:, :, :new_w]
    )


def _roi_layers(node: Any) -> list[dict]:
    if isinstance(node, dict):
        found = [node] if node.get("type") == "RoIAlign" else []
        return found + [layer for value in node.values() for layer in _roi_layers(value)]
    return []


def test_only_average_roi_align_and_layer_decay_sees_the_blocks(model: Any) -> None:
    layers = _roi_layers(mask_rcnn_config(None, 46, DEFAULTS["model"], DEFAULTS["eval"]))
    assert len(layers) == 2 and all(layer["pool_mode"] == "avg" for layer in layers)
    groups = build_param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    depth = sum(1 for n, _ in model.named_parameters() if n.endswith("blocks.0.norm1.weight"))
    assert depth == 1
    scales = sorted({g["lr_scale"] for g in groups})
    n_blocks = len(model.backbone.backbone.model.blocks)
    assert len(scales) == n_blocks + 2 and scales[0] == pytest.approx(0.5 ** (n_blocks + 1))


def test_a_training_step_and_a_prediction(model: Any, fashion_root: Path) -> None:
    split = load_split(fashion_root, "train")
    images, samples = collate([_dataset(fashion_root, 0.5)[i] for i in range(2)])
    model.train()
    losses = detector_losses(model, images, samples)
    assert {"loss", "loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"} <= set(losses)
    assert torch.isfinite(losses["loss"]) and losses["loss"].requires_grad
    losses["loss"].backward()
    assert model.backbone.backbone.model.blocks[0].attn.qkv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        preds = model(images, samples, mode="predict")
    boxes, masks = predictions_to_results(preds, [c["id"] for c in split.categories])
    # Untrained (backward ran, no optimizer step): the classifier's near-uniform softmax over 47 classes keeps
    # every score below the 0.05 threshold, so the untrained model's AP is 0 (what the smoke run must beat).
    assert len(boxes) == len(masks) == 0
    heights = {im.id: im.height for im in split.images}
    for pred in preds:  # masks come back in the original image's pixels
        assert pred.pred_instances.masks.shape[1] == heights[pred.metainfo["img_id"]]


def test_predictions_become_coco_results() -> None:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    pred = DetDataSample(metainfo={"img_id": 7})
    inst = InstanceData()
    inst.bboxes = torch.tensor([[2.0, 3.0, 12.0, 8.0]])
    inst.scores = torch.tensor([0.9])
    inst.labels = torch.tensor([1])
    mask = torch.zeros(1, 10, 14, dtype=torch.bool)
    mask[0, 3:8, 2:12] = True
    inst.masks = mask
    pred.pred_instances = inst
    boxes, masks = predictions_to_results([pred], [5, 23])
    assert boxes == [
        {"image_id": 7, "category_id": 23, "score": pytest.approx(0.9), "bbox": [2.0, 3.0, 10.0, 5.0]}
    ]
    from pycocotools import mask as mask_utils

    rle = masks[0]["segmentation"]
    assert masks[0]["category_id"] == 23 and rle["size"] == [10, 14]
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == 50

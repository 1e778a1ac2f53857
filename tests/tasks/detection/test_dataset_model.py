"""Detection inputs (resize, pad, flip, ignore regions), the RetinaNet built around our backbone, and the
mapping of its predictions back to the original image."""

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
from saip_bench.tasks.detection.adapter import to_image_detections
from saip_bench.tasks.detection.data import crowdhuman
from saip_bench.tasks.detection.dataset import CrowdHumanImages
from saip_bench.tasks.detection.model import build_retinanet

SIZE = (128, 192)


def _defaults() -> Any:
    return OmegaConf.load(config_path("evaluate/defaults/detection.yaml"))


def test_resize_pad_and_flip_keep_boxes_on_the_people(crowdhuman_master: Path) -> None:
    image = crowdhuman.load_split(crowdhuman_master, "train").images[0]
    plain, sample = CrowdHumanImages([image], SIZE)[0]
    flipped, fsample = CrowdHumanImages([image], SIZE, flip=1.0)[0]
    h, w = sample.metainfo["ori_shape"]
    new_h, new_w = sample.metainfo["img_shape"]
    # mmdet's scale_factor: the per-axis factors of the rounded resize, (new_w / w, new_h / h).
    assert sample.metainfo["scale_factor"] == (new_w / w, new_h / h)
    assert plain.shape == (3, *SIZE) and max(new_h / SIZE[0], new_w / SIZE[1]) == 1.0
    assert plain[:, new_h:, :].abs().sum() == 0 and plain[:, :, new_w:].abs().sum() == 0  # padding
    scale = np.array([new_w / w, new_h / h] * 2, dtype=np.float32)
    scaled = image.boxes * scale
    inside = (scaled[:, 2] - scaled[:, 0] >= 1) & (scaled[:, 3] - scaled[:, 1] >= 1)
    expected = np.clip(scaled[inside], 0, [new_w, new_h, new_w, new_h])
    np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sample.ignored_instances.bboxes.numpy(), image.ignore * scale, rtol=1e-5)
    boxes = fsample.gt_instances.bboxes.numpy()
    np.testing.assert_allclose(boxes[:, [0, 2]], new_w - expected[:, [2, 0]], atol=1e-3)
    torch.testing.assert_close(flipped[:, :new_h, :new_w], plain[:, :new_h, :new_w].flip(-1))
    assert fsample.metainfo["flip"] and fsample.metainfo["flip_direction"] == "horizontal"


@pytest.fixture(scope="module")
def detector():
    from saip_bench.backbones import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone("random:saip_vit_tiny_patch16", img_size=SIZE)
    defaults = _defaults()
    head = {**defaults.head, "pyramid_channels": 64, "stacked_convs": 1}
    return build_retinanet(backbone, head, {**defaults.eval, "score_thr": 0.0})


def test_layer_decay_finds_the_vit_blocks(detector) -> None:
    names = [n for n, _ in detector.named_parameters()]
    assert any(n.startswith("backbone.backbone.") and ".blocks.11." in n for n in names)
    groups = build_param_groups(detector, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales[0] == pytest.approx(0.5**13) and scales[-1] == 1.0 and len(scales) == 14


def test_loss_honours_ignore_regions_and_predict_returns_boxes(detector, crowdhuman_master: Path) -> None:
    images = crowdhuman.load_split(crowdhuman_master, "train").images[:2]
    inputs, samples = collate([CrowdHumanImages(images, SIZE)[i] for i in range(2)])
    detector.train()
    losses = detector_losses(detector, inputs, samples)
    assert set(losses) == {"loss", "loss_cls", "loss_bbox"} and torch.isfinite(losses["loss"])
    total = float(losses["loss_cls"].detach()) + float(losses["loss_bbox"].detach())
    assert float(losses["loss"].detach()) == pytest.approx(total)
    # The configured assigner (mmdet's MaxIoUAssigner, ignore_iof_thr) makes anchors inside an ignore region
    # neither positive nor negative (gt_inds -1), and anchors elsewhere negatives (0).
    from mmengine.structures import InstanceData

    priors = torch.tensor([[10.0, 10.0, 30.0, 50.0], [150.0, 10.0, 170.0, 50.0], [60.0, 60.0, 80.0, 100.0]])
    gt = InstanceData(
        bboxes=torch.tensor([[60.0, 60.0, 80.0, 100.0]]), labels=torch.zeros(1, dtype=torch.long)
    )
    ignore = InstanceData(
        bboxes=torch.tensor([[0.0, 0.0, 40.0, 60.0]]), labels=torch.zeros(1, dtype=torch.long)
    )
    result = detector.bbox_head.assigner.assign(InstanceData(priors=priors), gt, ignore)
    assert result.gt_inds.tolist() == [-1, 0, 1]
    detector.eval()
    with torch.no_grad():
        [result, _] = detector.predict(inputs, samples, rescale=False)
    assert result.pred_instances.bboxes.shape[1] == 4 and len(result.pred_instances.scores) > 0


def test_predictions_return_to_original_pixels_per_axis(crowdhuman_master: Path) -> None:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    record = crowdhuman.load_split(crowdhuman_master, "val").images[0]
    pred = DetDataSample(metainfo={"scale_factor": (0.5, 0.25), "ori_shape": (400, 300)})
    pred.pred_instances = InstanceData(
        bboxes=torch.tensor([[10.0, 10.0, 20.0, 30.0]]), scores=torch.tensor([0.9]),
        labels=torch.zeros(1, dtype=torch.long),
    )  # fmt: skip
    [image] = to_image_detections([record], [pred])
    np.testing.assert_allclose(image.det_boxes, [[20.0, 40.0, 40.0, 120.0]])
    assert image.size == (400, 300) and image.gt_boxes is record.boxes and image.ignore_boxes is record.ignore

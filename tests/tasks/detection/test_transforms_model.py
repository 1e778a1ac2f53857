"""Detection inputs (resize, pad, flip, ignore regions) and the mmdet model built around our backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from saip_bench.engine import build_param_groups
from saip_bench.tasks.detection.data import crowdhuman
from saip_bench.tasks.detection.model import HeadSettings, PostprocessSettings, build_detector, detection_loss
from saip_bench.tasks.detection.transforms import CrowdHumanImages, collate

SIZE = (128, 192)


def test_resize_pad_and_flip_keep_boxes_on_the_people(crowdhuman_master: Path) -> None:
    image = crowdhuman.load_split(crowdhuman_master, "train").images[0]
    plain, sample = CrowdHumanImages([image], SIZE)[0]
    flipped, fsample = CrowdHumanImages([image], SIZE, flip=1.0)[0]
    h, w = sample.metainfo["ori_shape"]
    scale = sample.metainfo["scale_factor"][0]
    assert plain.shape == (3, *SIZE) and scale == pytest.approx(min(SIZE[0] / h, SIZE[1] / w))
    new_h, new_w = sample.metainfo["img_shape"]
    assert plain[:, new_h:, :].abs().sum() == 0 and plain[:, :, new_w:].abs().sum() == 0  # padding
    inside = (image.boxes[:, 2] - image.boxes[:, 0] >= 1 / scale) & (
        image.boxes[:, 3] - image.boxes[:, 1] >= 1 / scale
    )
    expected = np.clip(image.boxes[inside] * scale, 0, [new_w, new_h, new_w, new_h])
    np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sample.ignored_instances.bboxes.numpy(), image.ignore * scale, rtol=1e-5)
    boxes = fsample.gt_instances.bboxes.numpy()
    np.testing.assert_allclose(boxes[:, [0, 2]], new_w - expected[:, [2, 0]], atol=1e-3)
    torch.testing.assert_close(flipped[:, :new_h, :new_w], plain[:, :new_h, :new_w].flip(-1))


@pytest.fixture(scope="module")
def detector():
    from saip_bench.backbones import load_backbone

    torch.manual_seed(0)
    backbone = load_backbone("random:saip_vit_tiny_patch16", img_size=SIZE)
    return build_detector(
        backbone, HeadSettings(pyramid_channels=64, stacked_convs=1), PostprocessSettings(score_thr=0.0)
    )


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
    losses = detection_loss(detector, inputs, samples)
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

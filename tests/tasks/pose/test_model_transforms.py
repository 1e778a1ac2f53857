"""The ViTPose-simple estimator on the suite's backbone, and the UDP crop geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saip_bench.engine import build_param_groups
from saip_bench.tasks.pose.meta import keypoint_meta
from saip_bench.tasks.pose.transforms import box_to_center_scale, transform_points, udp_matrix

SIZE = (64, 48)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    from saip_bench.backbones import load_backbone
    from saip_bench.tasks.pose.model import build_pose_model

    torch.manual_seed(0)
    return build_pose_model(load_backbone("random:test_vit", img_size=SIZE), 17, SIZE)


def test_box_to_center_scale_pads_and_fixes_aspect() -> None:
    center, scale = box_to_center_scale((10.0, 20.0, 30.0, 100.0), aspect=0.75)
    assert center.tolist() == [25.0, 70.0]
    assert scale.tolist() == pytest.approx([125 * 0.75, 125.0])  # tall box: height x 1.25, width from aspect
    _, wide = box_to_center_scale((0.0, 0.0, 200.0, 100.0), aspect=0.75)
    assert wide.tolist() == pytest.approx([250.0, 250.0 / 0.75])


def test_udp_crop_and_codec_round_trip_to_the_image() -> None:
    """Image -> UDP crop -> heatmap -> decoded keypoint -> mmpose's back-mapping returns the image point."""
    from saip_bench.mm import setup_mm

    setup_mm("mmpose")
    from mmpose.codecs import UDPHeatmap

    height, width = SIZE
    codec = UDPHeatmap(input_size=(width, height), heatmap_size=(width // 4, height // 4), sigma=2.0)
    center, scale = box_to_center_scale((40.0, 30.0, 50.0, 120.0), width / height)
    image_points = np.array([[60.0, 50.0], [70.0, 130.0], [45.0, 90.0]], dtype=np.float32)
    crop_points = transform_points(image_points, udp_matrix(center, scale, 0.0, (width, height)))
    encoded = codec.encode(crop_points[None], np.ones((1, 3), np.float32))
    decoded, _ = codec.decode(encoded["heatmaps"])
    back = decoded[0] / np.array([width, height]) * scale + center - 0.5 * scale
    assert (
        np.abs(back - image_points).max() < 0.05 * scale[1] / 4
    )  # within a small fraction of a heatmap cell


def test_parameters_are_named_for_layer_decay(model: torch.nn.Module) -> None:
    names = [name for name, _ in model.named_parameters()]
    assert any(name.startswith("backbone.backbone.model.blocks.0.") for name in names)
    assert any(name.startswith("head.final_layer.") for name in names)
    groups = build_param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.75)
    scales = sorted({group["lr_scale"] for group in groups})
    assert len(scales) > 3 and scales[-1] == 1.0 and scales[0] < 0.75**3


def test_head_init_keeps_backbone_weights() -> None:
    from saip_bench.backbones import load_backbone
    from saip_bench.tasks.pose.model import build_pose_model

    backbone = load_backbone("random:test_vit", img_size=SIZE)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = build_pose_model(backbone, 17, SIZE)
    after = model.backbone.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.head.final_layer.weight.std() < 0.01


def test_loss_and_flip_test_prediction(model: torch.nn.Module) -> None:
    from saip_bench.tasks.pose.model import eval_samples, train_samples

    images = torch.randn(2, 3, *SIZE)
    heatmaps, weights = torch.rand(2, 17, SIZE[0] // 4, SIZE[1] // 4), torch.ones(2, 17)
    losses = model(images, train_samples(heatmaps, weights), mode="loss")
    assert torch.isfinite(losses["loss_kpt"]) and losses["loss_kpt"].requires_grad
    zero = model(images, train_samples(heatmaps, torch.zeros(2, 17)), mode="loss")["loss_kpt"]
    assert float(zero.detach()) == 0.0  # unlabelled keypoints do not count
    model.eval()
    centers = np.array([[50.0, 60.0], [100.0, 80.0]], np.float32)
    scales = np.array([[48.0, 64.0], [96.0, 128.0]], np.float32)
    with torch.no_grad():
        results = model(
            images,
            eval_samples(centers, scales, SIZE, keypoint_meta("coco_keypoints").flip_indices),
            mode="predict",
        )
    points = results[1].pred_instances.keypoints
    assert points.shape == (1, 17, 2) and results[1].pred_instances.keypoint_scores.shape == (1, 17)
    assert (points[0, :, 0] > 100 - 96).all() and (
        points[0, :, 0] < 100 + 96
    ).all()  # in the second crop's box
    model.train()

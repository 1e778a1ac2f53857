"""The ViTPose-simple top-down estimator as an mmpose ``TopdownPoseEstimator``, built on the suite's backbone.

ViTPose's simple decoder (Xu et al., NeurIPS 2022, Sec. 3.1; mmpose
``configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-base-simple_8xb64-210e_coco-256x192.py``):
the last stride-16 feature map, ReLU and 4x bilinear upsampling (``FeatureMapProcessor``), then a 3x3 conv to
one heatmap per keypoint (``HeatmapHead`` without deconvolutions), trained with ``KeypointMSELoss``
weighted by keypoint visibility, decoded by the ``UDPHeatmap`` codec; the test flips the crop and
averages the flipped heatmaps with the keypoint order swapped.

Helpers here turn plain tensors into the ``PoseDataSample`` lists mmpose's ``loss`` / ``predict`` take, so
the training batch stays tensors that the engine can move between devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def build_pose_model(
    backbone: nn.Module,
    num_keypoints: int,
    img_size: tuple[int, int],
    *,
    sigma: float = 2.0,
    flip_test: bool = True,
) -> nn.Module:
    """A ``TopdownPoseEstimator`` over ``backbone`` (a :class:`saip_bench.backbones.Backbone`).

    Parameter names keep the backbone's ``blocks.N.`` under ``backbone.``, so the engine's layer-wise lr
    decay finds them (``backbone.backbone.model.blocks.N.``).

    Args:
        backbone: the loaded backbone; it is used in place (not copied).
        num_keypoints: heatmap channels (17 or 133).
        img_size: ``(H, W)`` input size; heatmaps are 1/4 of it.
        sigma: the codec's Gaussian sigma (heatmap pixels).
        flip_test: average the prediction with the flipped crop's.
    """
    from mmengine.config import ConfigDict

    from saip_bench.mm import setup_mm

    setup_mm("mmpose")
    from mmpose.registry import MODELS

    height, width = int(img_size[0]), int(img_size[1])
    codec = dict(
        type="UDPHeatmap", input_size=(width, height), heatmap_size=(width // 4, height // 4), sigma=sigma
    )
    channels = int(backbone.map_channels[-1])
    config = ConfigDict(
        type="TopdownPoseEstimator",
        backbone=dict(type="SaipBackbone", backbone=backbone, img_size=tuple(backbone.img_size), out="last"),
        neck=dict(type="FeatureMapProcessor", scale_factor=4.0, apply_relu=True),
        head=dict(
            type="HeatmapHead",
            in_channels=channels,
            out_channels=int(num_keypoints),
            deconv_out_channels=[],
            deconv_kernel_sizes=[],
            final_layer=dict(kernel_size=3, padding=1),
            loss=dict(type="KeypointMSELoss", use_target_weight=True),
            decoder=codec,
        ),
        train_cfg=dict(compute_acc=False),
        test_cfg=dict(flip_test=flip_test, flip_mode="heatmap", shift_heatmap=False),
    )
    model = MODELS.build(config)
    # HeatmapHead's own init_cfg (normal, std 0.001, bias 0), done here rather than through mmengine's
    # init_weights, which logs every backbone parameter; the backbone keeps its loaded weights.
    final = model.head.final_layer
    nn.init.normal_(final.weight, std=0.001)
    nn.init.zeros_(final.bias)
    return model


def train_samples(heatmaps: torch.Tensor, weights: torch.Tensor) -> list[Any]:
    """``PoseDataSample`` targets for ``model.loss``: ``(B, K, h, w)`` heatmaps and ``(B, K)`` weights."""
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample

    samples = []
    for target, weight in zip(heatmaps, weights, strict=True):
        sample = PoseDataSample()
        sample.gt_fields = PixelData(heatmaps=target)
        sample.gt_instance_labels = InstanceData(keypoint_weights=weight[None])
        samples.append(sample)
    return samples


def eval_samples(
    centers: np.ndarray, scales: np.ndarray, img_size: tuple[int, int], flip_indices: Sequence[int]
) -> list[Any]:
    """``PoseDataSample`` s with the metainfo ``model.predict`` reads: flip indices and each crop's geometry.

    mmpose maps the decoded keypoints back to the image with ``x / input_size * scale + center - scale / 2``;
    with the UDP codec (which decodes to ``x_heatmap / (W_heatmap - 1) * W``) this is the exact inverse of the
    UDP crop.

    Args:
        centers: ``(B, 2)`` crop centers in the image.
        scales: ``(B, 2)`` crop sizes (w, h) in the image.
        img_size: ``(H, W)`` of the crops.
        flip_indices: the dataset's flip pairs as an index list.
    """
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    size = np.array([int(img_size[1]), int(img_size[0])], dtype=np.float32)
    samples = []
    for center, scale in zip(np.asarray(centers), np.asarray(scales), strict=True):
        meta = {
            "flip_indices": list(flip_indices),
            "input_size": size,
            "input_center": center,
            "input_scale": scale,
        }
        sample = PoseDataSample(metainfo=meta)
        sample.gt_instances = InstanceData(
            bboxes=np.zeros((1, 4), np.float32), bbox_scores=np.ones(1, np.float32)
        )
        samples.append(sample)
    return samples

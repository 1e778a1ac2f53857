"""The detector: our ViT -> ViTDet simple feature pyramid (strides 8/16/32) -> FPN -> RetinaNet (mmdet).

Why RetinaNet: CrowdHuman's paper reports both standard detectors as baselines (FPN Faster R-CNN and
RetinaNet, Shao et al. 2018), and dense one-stage heads are what lightweight backbones are usually paired
with for speed; on CPU it trains about 2.5x faster per step than Faster R-CNN (DEPENDENCIES.md), which is
what a smoke budget can afford. Pedestrian-specific settings follow CrowdDet: anchors of aspect ratio
``h / w`` in {1, 2, 3}, NMS at IoU 0.5, many detections per image (crowds of 20-100+ people).

Ignore regions: mmdet's ``MaxIoUAssigner`` reads ``ignored_instances`` with ``ignore_iof_thr`` and marks
anchors whose IoF with an ignore region exceeds it as neither positive nor negative, so crowds and
reflections neither teach "person" nor "background".

The settings are the recipe's ``head`` and ``eval`` sections, documented with their defaults in
``configs/evaluate/defaults/detection.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from saip_bench.mm.detection import build_detector, pyramid_backbone

#: Pyramid strides taken from the ViT's stride-16 map; FPN adds P6 and P7 (RetinaNet's five levels).
STRIDES = (8, 16, 32)


def retinanet_config(backbone: Any, head: Mapping[str, Any], test: Mapping[str, Any]) -> dict[str, Any]:
    """The mmdet ``RetinaNet`` config around an already-loaded backbone.

    Args:
        backbone: a loaded :class:`saip_bench.backbones.Backbone`.
        head: ``pyramid_channels``, ``stacked_convs``, ``anchor_ratios``, ``octave_base_scale``,
            ``scales_per_octave``, ``pos_iou``, ``neg_iou``, ``ignore_iof`` (the recipe's ``head``).
        test: ``score_thr``, ``nms_iou``, ``nms_pre``, ``max_per_img`` (post-processing; the recipe's
            ``eval``).
    """
    channels = int(head["pyramid_channels"])
    return dict(
        type="RetinaNet",
        data_preprocessor=dict(type="BaseDataPreprocessor"),  # inputs arrive normalised and padded
        backbone=pyramid_backbone(backbone, STRIDES, channels),
        neck=dict(
            type="FPN", in_channels=[channels] * len(STRIDES), out_channels=channels, start_level=0,
            add_extra_convs="on_input", num_outs=5,
        ),
        bbox_head=dict(
            type="RetinaHead", num_classes=1, in_channels=channels, stacked_convs=int(head["stacked_convs"]),
            feat_channels=channels,
            anchor_generator=dict(
                type="AnchorGenerator", octave_base_scale=int(head["octave_base_scale"]),
                scales_per_octave=int(head["scales_per_octave"]),
                ratios=[float(r) for r in head["anchor_ratios"]], strides=[8, 16, 32, 64, 128],
            ),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0, 1.0, 1.0, 1.0]
            ),
            loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        train_cfg=dict(
            assigner=dict(
                type="MaxIoUAssigner", pos_iou_thr=float(head["pos_iou"]), neg_iou_thr=float(head["neg_iou"]),
                min_pos_iou=0, ignore_iof_thr=float(head["ignore_iof"]),
            ),
            sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False,
        ),
        test_cfg=dict(
            nms_pre=int(test["nms_pre"]), min_bbox_size=0, score_thr=float(test["score_thr"]),
            nms=dict(type="nms", iou_threshold=float(test["nms_iou"])), max_per_img=int(test["max_per_img"]),
        ),
    )  # fmt: skip


def build_retinanet(backbone: Any, head: Mapping[str, Any], test: Mapping[str, Any]) -> nn.Module:
    """The RetinaNet of :func:`retinanet_config`, built and initialised (the head's focal-loss prior)."""
    return build_detector(retinanet_config(backbone, head, test))

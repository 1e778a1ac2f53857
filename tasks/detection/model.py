"""The detector: our ViT -> ViTDet simple feature pyramid (strides 8/16/32) -> FPN -> RetinaNet (mmdet).

Why RetinaNet: CrowdHuman's paper reports both standard detectors as baselines (FPN Faster R-CNN and
RetinaNet, Shao et al. 2018), and dense one-stage heads are what lightweight backbones are usually paired
with for speed; on CPU it trains about 2.5x faster per step than Faster R-CNN (DEPENDENCIES.md), which is
what a smoke budget can afford. Pedestrian-specific settings follow CrowdDet: anchors of aspect ratio
``h / w`` in {1, 2, 3}, NMS at IoU 0.5, many detections per image (crowds of 20-100+ people).

Ignore regions: mmdet's ``MaxIoUAssigner`` reads ``ignored_instances`` with ``ignore_iof_thr`` and marks
anchors whose IoF with an ignore region exceeds it as neither positive nor negative, so crowds and
reflections neither teach "person" nor "background".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class HeadSettings:
    """The recipe's ``head`` section.

    Attributes:
        pyramid_channels: channels of the simple pyramid, the FPN and the head's convolutions.
        stacked_convs: convolutions of each head branch before its predictor (RetinaNet: 4).
        anchor_ratios: anchor ``h / w`` ratios (CrowdDet: 1, 2, 3 for full-body boxes).
        octave_base_scale: anchor size in units of the level's stride (RetinaNet: 4).
        scales_per_octave: anchor scales per level (RetinaNet: 3).
        pos_iou: assigner IoU for a positive anchor.
        neg_iou: assigner IoU below which an anchor is negative.
        ignore_iof: anchors covered by an ignore region beyond this IoF are ignored.
    """

    pyramid_channels: int = 256
    stacked_convs: int = 4
    anchor_ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    octave_base_scale: int = 4
    scales_per_octave: int = 3
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    ignore_iof: float = 0.5


@dataclass(frozen=True)
class PostprocessSettings:
    """The recipe's ``test`` section: post-processing of the detections.

    Attributes:
        score_thr: detections below this score are dropped before NMS.
        nms_iou: NMS IoU threshold.
        nms_pre: top-k candidates per level before NMS.
        max_per_img: detections kept per image.
    """

    score_thr: float = 0.05
    nms_iou: float = 0.5
    nms_pre: int = 1000
    max_per_img: int = 300


def detector_config(backbone: Any, head: HeadSettings, test: PostprocessSettings) -> Any:
    """The mmdet ``RetinaNet`` config (a ``ConfigDict``) around an already-loaded backbone."""
    from mmengine.config import ConfigDict

    channels = int(head.pyramid_channels)
    strides = (8, 16, 32)
    return ConfigDict(
        type="RetinaNet",
        data_preprocessor=dict(type="BaseDataPreprocessor"),  # inputs arrive normalised and padded
        backbone=dict(
            type="SaipBackbone", backbone=backbone, img_size=tuple(backbone.img_size), out="pyramid",
            strides=strides, out_channels=channels,
        ),
        neck=dict(
            type="FPN", in_channels=[channels] * len(strides), out_channels=channels, start_level=0,
            add_extra_convs="on_input", num_outs=5,
        ),
        bbox_head=dict(
            type="RetinaHead", num_classes=1, in_channels=channels, stacked_convs=head.stacked_convs,
            feat_channels=channels,
            anchor_generator=dict(
                type="AnchorGenerator", octave_base_scale=head.octave_base_scale,
                scales_per_octave=head.scales_per_octave, ratios=list(head.anchor_ratios),
                strides=[8, 16, 32, 64, 128],
            ),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0, 1.0, 1.0, 1.0]
            ),
            loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        train_cfg=dict(
            assigner=dict(
                type="MaxIoUAssigner", pos_iou_thr=head.pos_iou, neg_iou_thr=head.neg_iou, min_pos_iou=0,
                ignore_iof_thr=head.ignore_iof,
            ),
            sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False,
        ),
        test_cfg=dict(
            nms_pre=test.nms_pre, min_bbox_size=0, score_thr=test.score_thr,
            nms=dict(type="nms", iou_threshold=test.nms_iou), max_per_img=test.max_per_img,
        ),
    )  # fmt: skip


def build_detector(
    backbone: Any, head: HeadSettings | None = None, test: PostprocessSettings | None = None
) -> nn.Module:
    """Build the RetinaNet around ``backbone`` (a :class:`saip_bench.backbones.Backbone`).

    Its backbone parameters are named ``backbone.backbone.<timm names>`` (``...blocks.N...`` for a ViT), so
    the engine's layer-decay grouping finds the blocks; the simple pyramid (``backbone.neck``) counts as
    the layer after the last block.
    """
    from saip_bench.mm import setup_mm

    setup_mm("mmdet")
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger

    model = MODELS.build(detector_config(backbone, head or HeadSettings(), test or PostprocessSettings()))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs one INFO paragraph per parameter
    try:
        model.init_weights()  # the head's focal-loss prior; SaipBackbone keeps its loaded weights
    finally:
        logger.setLevel(level)
    return model


def detection_loss(model: nn.Module, inputs: Any, data_samples: list[Any]) -> dict[str, Any]:
    """mmdet's ``loss`` summed into ``{"loss": total, "<term>": value}`` (per-level lists are summed).

    Called through ``forward(..., mode="loss")`` so that a DistributedDataParallel wrapper syncs gradients.
    """
    losses = model(inputs, data_samples, mode="loss")
    out: dict[str, Any] = {}
    for name, value in losses.items():
        if "loss" not in name:
            continue
        out[name] = sum(value) if isinstance(value, (list, tuple)) else value
    out["loss"] = sum(out.values())
    return out

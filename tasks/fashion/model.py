"""Mask R-CNN on the suite's backbone, built through mmdet (the Fashionpedia paper's baseline; ViTDet's).

backbone (our ViT) -> simple feature pyramid (strides 4/8/16/32, ViTDet) -> mmdet FPN (adds the stride-64
level by max-pooling) -> RPN -> RoIAlign -> shared 2-fc box head + 4-conv mask head. Every RoIAlign is the
average-pooling one, the only mode the CPU stand-in for mmcv's ops implements. The config is a
``mmengine.config.ConfigDict`` (plain dicts fail inside mmdet's two-stage detectors), with the loaded
backbone object inside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSettings:
    """The ``model`` section of the recipe.

    Attributes:
        strides: pyramid strides built from the ViT's stride-16 map.
        channels: pyramid and FPN channels.
        rpn_pre_nms: proposals kept per level before NMS (train and test).
        rpn_proposals: proposals kept after NMS per image (train and test).
        rcnn_samples: RoIs sampled per image for the box and mask heads in training (25 % positive).
        max_per_img: detections kept per image at test time.
        score_thr: minimum detection score at test time.
    """

    strides: tuple[int, ...] = (4, 8, 16, 32)
    channels: int = 256
    rpn_pre_nms: int = 2000
    rpn_proposals: int = 1000
    rcnn_samples: int = 512
    max_per_img: int = 100
    score_thr: float = 0.05


def mask_rcnn_config(backbone: Any, num_classes: int, settings: ModelSettings) -> Any:
    """The mmdet ``MaskRCNN`` config for ``backbone`` (a loaded :class:`saip_bench.backbones.Backbone`)."""
    from mmengine.config import ConfigDict

    strides = [int(s) for s in settings.strides]
    ch = int(settings.channels)
    roi = dict(type="RoIAlign", sampling_ratio=0, pool_mode="avg", aligned=True)
    proposal = dict(
        nms_pre=settings.rpn_pre_nms,
        max_per_img=settings.rpn_proposals,
        nms=dict(type="nms", iou_threshold=0.7),
        min_bbox_size=0,
    )
    return ConfigDict(
        type="MaskRCNN",
        backbone=dict(
            type="SaipBackbone", backbone=backbone, out="pyramid", strides=strides, out_channels=ch
        ),
        neck=dict(type="FPN", in_channels=[ch] * len(strides), out_channels=ch, num_outs=len(strides) + 1),
        rpn_head=dict(
            type="RPNHead",
            in_channels=ch,
            feat_channels=ch,
            anchor_generator=dict(
                type="AnchorGenerator",
                scales=[8],
                ratios=[0.5, 1.0, 2.0],
                strides=[*strides, strides[-1] * 2],
            ),
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0, 1.0, 1.0, 1.0]
            ),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        roi_head=dict(
            type="StandardRoIHead",
            bbox_roi_extractor=dict(
                type="SingleRoIExtractor",
                roi_layer={**roi, "output_size": 7},
                out_channels=ch,
                featmap_strides=strides,
            ),
            bbox_head=dict(
                type="Shared2FCBBoxHead",
                in_channels=ch,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(
                    type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]
                ),
                reg_class_agnostic=False,
                loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type="L1Loss", loss_weight=1.0),
            ),
            mask_roi_extractor=dict(
                type="SingleRoIExtractor",
                roi_layer={**roi, "output_size": 14},
                out_channels=ch,
                featmap_strides=strides,
            ),
            mask_head=dict(
                type="FCNMaskHead",
                num_convs=4,
                in_channels=ch,
                conv_out_channels=ch,
                num_classes=num_classes,
                loss_mask=dict(type="CrossEntropyLoss", use_mask=True, loss_weight=1.0),
            ),
        ),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(
                    type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                    match_low_quality=True, ignore_iof_thr=-1,
                ),
                sampler=dict(
                    type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False
                ),
                allowed_border=-1,
                pos_weight=-1,
                debug=False,
            ),
            rpn_proposal=proposal,
            rcnn=dict(
                assigner=dict(
                    type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                    match_low_quality=True, ignore_iof_thr=-1,
                ),
                sampler=dict(
                    type="RandomSampler", num=settings.rcnn_samples, pos_fraction=0.25, neg_pos_ub=-1,
                    add_gt_as_proposals=True,
                ),
                mask_size=28,
                pos_weight=-1,
                debug=False,
            ),
        ),
        test_cfg=dict(
            rpn=proposal,
            rcnn=dict(
                score_thr=settings.score_thr,
                nms=dict(type="nms", iou_threshold=0.5),
                max_per_img=settings.max_per_img,
                mask_thr_binary=0.5,
            ),
        ),
    )  # fmt: skip


def build_mask_rcnn(backbone: Any, num_classes: int, settings: ModelSettings | None = None) -> nn.Module:
    """A Mask R-CNN (mmdet ``MaskRCNN``) whose ``backbone`` attribute wraps ``backbone``.

    The engine's layer-decay grouping finds the ViT blocks under ``backbone.backbone.model.blocks.N.``.
    """
    from saip_bench.mm import setup_mm

    setup_mm("mmdet")
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger

    model = MODELS.build(mask_rcnn_config(backbone, num_classes, settings or ModelSettings()))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter's initialiser at INFO
    try:
        model.init_weights()  # the heads' initialisation; SaipBackbone keeps its loaded weights
    finally:
        logger.setLevel(level)
    return model


def sum_losses(losses: dict[str, Any]) -> dict[str, torch.Tensor]:
    """mmdet's loss dict (tensors or per-level lists; ``acc`` is a metric) -> the engine's named terms:
    ``loss`` (the sum of every ``loss*`` term) and each term summed over levels, for logging."""
    terms: dict[str, torch.Tensor] = {}
    for name, value in losses.items():
        if "loss" not in name:
            continue
        parts = value if isinstance(value, (list, tuple)) else [value]
        terms[name] = sum((p.sum() for p in parts), torch.zeros((), device=parts[0].device))
    return {"loss": sum(terms.values()), **terms}  # type: ignore[dict-item]

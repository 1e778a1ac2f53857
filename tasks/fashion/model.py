"""Mask R-CNN on the suite's backbone, built through mmdet (the Fashionpedia paper's baseline; ViTDet's).

backbone (our ViT) -> simple feature pyramid (strides 4/8/16/32, ViTDet) -> mmdet FPN (adds the stride-64
level by max-pooling) -> RPN -> RoIAlign -> shared 2-fc box head + 4-conv mask head. Every RoIAlign is the
average-pooling one, the only mode the CPU stand-in for mmcv's ops implements. The settings are the recipe's
``model`` and ``eval`` sections, documented with their defaults in ``configs/evaluate/defaults/fashion.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from saip_bench.mm.detection import build_detector, pyramid_backbone


def mask_rcnn_config(
    backbone: Any, num_classes: int, model: Mapping[str, Any], test: Mapping[str, Any]
) -> dict[str, Any]:
    """The mmdet ``MaskRCNN`` config for ``backbone`` (a loaded :class:`saip_bench.backbones.Backbone`).

    Args:
        backbone: the backbone the pyramid is built on.
        num_classes: the dataset's categories.
        model: ``strides``, ``channels``, ``rpn_pre_nms``, ``rpn_proposals``, ``rcnn_samples`` (the recipe's
            ``model``).
        test: ``score_thr``, ``max_per_img`` (post-processing; the recipe's ``eval``).
    """
    strides = [int(s) for s in model["strides"]]
    ch = int(model["channels"])
    roi = dict(type="RoIAlign", sampling_ratio=0, pool_mode="avg", aligned=True)
    proposal = dict(
        nms_pre=int(model["rpn_pre_nms"]),
        max_per_img=int(model["rpn_proposals"]),
        nms=dict(type="nms", iou_threshold=0.7),
        min_bbox_size=0,
    )
    return dict(
        type="MaskRCNN",
        backbone=pyramid_backbone(backbone, strides, ch),
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
                    type="RandomSampler", num=int(model["rcnn_samples"]), pos_fraction=0.25, neg_pos_ub=-1,
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
                score_thr=float(test["score_thr"]),
                nms=dict(type="nms", iou_threshold=0.5),
                max_per_img=int(test["max_per_img"]),
                mask_thr_binary=0.5,
            ),
        ),
    )  # fmt: skip


def build_mask_rcnn(
    backbone: Any, num_classes: int, model: Mapping[str, Any], test: Mapping[str, Any]
) -> nn.Module:
    """The Mask R-CNN of :func:`mask_rcnn_config`, built and initialised (its heads; the backbone keeps its
    weights). The engine's layer decay finds the ViT blocks under ``backbone.backbone.model.blocks.N.``."""
    return build_detector(mask_rcnn_config(backbone, num_classes, model, test))

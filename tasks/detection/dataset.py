"""CrowdHuman images as mmdet inputs: the shared letterbox (:func:`saip_bench.mm.detection.letterbox`) plus
what is CrowdHuman's own, its targets and its ignore regions.

Each item is ``(image tensor, DetDataSample)`` with ``gt_instances`` (full-body boxes, label 0; clipped to the
resized image, those under :data:`MIN_BOX_SIZE` dropped) and ``ignored_instances`` (the ignore regions, which
mmdet's assigner reads), in input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from saip_bench.evaluate.images import read_rgb
from saip_bench.mm.detection import det_sample, draw_flip, letterbox, map_boxes
from saip_bench.tasks.detection.data.crowdhuman import CrowdHumanImage

#: Targets smaller than this (pixels, after resizing) are dropped from training (mmdet's min_gt_bbox_wh).
MIN_BOX_SIZE = 1.0


class CrowdHumanImages(Dataset):
    """CrowdHuman images as mmdet inputs.

    Args:
        images: the split's records.
        img_size: ``(H, W)`` of every output tensor.
        flip: horizontal flip probability (training); 0 for evaluation (see
            :func:`saip_bench.mm.detection.draw_flip`).
    """

    def __init__(
        self, images: Sequence[CrowdHumanImage], img_size: tuple[int, int], *, flip: float = 0.0
    ) -> None:
        self.images = list(images)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.flip = float(flip)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        from mmengine.structures import InstanceData

        record = self.images[index]
        view = letterbox(read_rgb(record.path), self.img_size, flip=draw_flip(self.flip))
        new_h, new_w = view.img_shape
        boxes = map_boxes(record.boxes, view)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, new_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, new_h)
        big = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIZE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIZE)
        boxes = boxes[big]
        ignore = map_boxes(record.ignore, view)
        sample = det_sample(view, record.image_id)
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
        sample.ignored_instances = InstanceData(
            bboxes=ignore, labels=torch.zeros(len(ignore), dtype=torch.long)
        )
        return view.image, sample

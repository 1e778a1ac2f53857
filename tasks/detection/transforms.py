"""Detection inputs: keep-ratio resize into the recipe size, bottom-right padding, flip, ImageNet mean/std.

Every image becomes exactly ``img_size`` (the ViT's position embedding is laid out for it): it is scaled by
``min(H / h, W / w)`` so that it fits, placed at the top-left corner and padded with zeros (the mean after
normalisation would differ per channel; zeros after normalisation are mmdet's ``pad_value=0`` on normalised
inputs). Boxes follow the same scale and flip. Each item is ``(image tensor, DetDataSample)`` with
``gt_instances`` (full boxes, label 0) and ``ignored_instances`` (ignore regions), and ``metainfo`` keys the
mmdet heads read (``img_shape``, ``pad_shape``, ``batch_input_shape``, ``scale_factor``, ``ori_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD, read_rgb
from saip_bench.tasks.detection.data.crowdhuman import CrowdHumanImage

#: Targets smaller than this (pixels, after resizing) are dropped from training (mmdet's min_gt_bbox_wh).
MIN_BOX_SIZE = 1.0


def resize_scale(size: tuple[int, int], img_size: tuple[int, int]) -> float:
    """The keep-ratio scale that fits an ``(h, w)`` image into ``img_size``."""
    return min(img_size[0] / size[0], img_size[1] / size[1])


def _scale_boxes(boxes: np.ndarray, scale: float, width: int, flip: bool) -> np.ndarray:
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * scale
    if flip:
        out = out.copy()
        out[:, [0, 2]] = width - out[:, [2, 0]]
    return out


class CrowdHumanImages(Dataset):
    """CrowdHuman images as mmdet inputs.

    Args:
        images: the split's records.
        img_size: ``(H, W)`` of every output tensor.
        flip: horizontal flip probability (training); 0 for evaluation. Drawn from torch's RNG, like
            torchvision's flip, so a seeded DataLoader generator makes it reproducible.
    """

    def __init__(
        self, images: Sequence[CrowdHumanImage], img_size: tuple[int, int], *, flip: float = 0.0
    ) -> None:
        self.images = list(images)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.flip = float(flip)
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        record = self.images[index]
        img = read_rgb(record.path)
        width, height = img.size
        scale = resize_scale((height, width), self.img_size)
        new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
        img = img.resize((new_w, new_h), Image.BILINEAR)
        flip = self.flip > 0 and float(torch.rand(())) < self.flip
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        tensor = torch.zeros(3, *self.img_size)
        tensor[:, :new_h, :new_w] = (pixels - self._mean) / self._std

        boxes = _scale_boxes(record.boxes, scale, new_w, flip)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, new_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, new_h)
        big = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIZE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIZE)
        boxes = boxes[big]
        ignore = _scale_boxes(record.ignore, scale, new_w, flip)
        sample = DetDataSample(
            metainfo={
                "img_id": record.image_id,
                "ori_shape": (height, width),
                "img_shape": (new_h, new_w),
                "pad_shape": self.img_size,
                "batch_input_shape": self.img_size,
                "scale_factor": (scale, scale),
                "flip": bool(flip),
            }
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.from_numpy(boxes), labels=torch.zeros(len(boxes), dtype=torch.long)
        )
        sample.ignored_instances = InstanceData(
            bboxes=torch.from_numpy(ignore), labels=torch.zeros(len(ignore), dtype=torch.long)
        )
        return tensor, sample


def collate(batch: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[Any]]:
    """Stack the images; keep the data samples as a list (mmdet's ``model.loss(inputs, data_samples)``)."""
    return torch.stack([image for image, _ in batch]), [sample for _, sample in batch]

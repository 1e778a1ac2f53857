"""Fashionpedia images and instances as mmdet inputs: the shared letterbox
(:func:`saip_bench.mm.detection.letterbox`: resize keeping the ratio, flip, normalise, pad) plus what is
Fashionpedia's own, its instance masks.

Each item is ``(image, data_sample)``: a normalised ``(3, H, W)`` float tensor padded to the recipe's
``img_size``, and an mmdet ``DetDataSample`` whose ``gt_instances`` hold ``bboxes`` (xyxy, input pixels),
``labels`` (0-based category index) and ``masks`` (``BitmapMasks`` at the padded size); its metainfo lets
``predict(rescale=True)`` return boxes and masks in original image pixels. Crowd annotations
(``iscrowd: 1``) are not trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from saip_bench.errors import DataFormatError
from saip_bench.evaluate.images import read_rgb
from saip_bench.mm.detection import Letterboxed, det_sample, draw_flip, letterbox, map_boxes

if TYPE_CHECKING:
    from saip_bench.tasks.fashion.data import FashionImage


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A validated COCO polygon list or RLE (compressed or not) as an ``(height, width)`` bool mask."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


class FashionDataset(Dataset):
    """Images of one split, transformed for training (``flip`` > 0) or evaluation.

    Args:
        images: the split's images (:attr:`FashionSplit.images`).
        category_ids: dataset category ids in label order (label ``i`` is ``category_ids[i]``).
        img_size: ``(H, W)`` input size: each image is resized to fit inside it, keeping its aspect ratio.
        flip: probability of a horizontal flip (0 for evaluation; see
            :func:`saip_bench.mm.detection.draw_flip`).
    """

    def __init__(
        self,
        images: Sequence[FashionImage],
        category_ids: Sequence[int],
        img_size: tuple[int, int],
        *,
        flip: float = 0.0,
    ) -> None:
        self.images = list(images)
        self.label_of = {int(c): i for i, c in enumerate(category_ids)}
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.flip = float(flip)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        from saip_bench.mm import setup_mm

        setup_mm("mmdet")  # mmdet's mask structures import mmcv's ops; cached after the first call
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData

        item = self.images[index]
        rgb = read_rgb(item.path)
        if rgb.size != (item.width, item.height):
            raise DataFormatError(
                item.path, f"image is {rgb.size[0]}x{rgb.size[1]}, the json says {item.width}x{item.height}"
            )
        view = letterbox(rgb, self.img_size, flip=draw_flip(self.flip))
        anns = [a for a in item.annotations if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        gt = InstanceData()
        gt.bboxes = map_boxes(boxes, view)
        gt.labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.long)
        gt.masks = BitmapMasks(instance_masks(anns, view), *view.pad_shape)
        sample = det_sample(view, item.id, img_path=str(item.path))
        sample.gt_instances = gt
        return view.image, sample


def instance_masks(annotations: Sequence[dict[str, Any]], view: Letterboxed) -> np.ndarray:
    """``(N, H, W)`` uint8 masks of ``annotations`` laid out as ``view``: resized (nearest), mirrored when
    ``view.flip``, zero in the padding."""
    pad_h, pad_w = view.pad_shape
    new_h, new_w = view.img_shape
    masks = np.zeros((len(annotations), pad_h, pad_w), dtype=np.uint8)
    if not annotations:
        return masks
    height, width = view.ori_shape
    full = np.stack([decode_segmentation(a["segmentation"], height, width) for a in annotations])
    small = F.interpolate(torch.from_numpy(full).float()[None], size=(new_h, new_w), mode="nearest")
    masks[:, :new_h, :new_w] = small[0].numpy().astype(np.uint8)
    if view.flip:
        masks[:, :new_h, :new_w] = masks[:, :new_h, new_w - 1 :: -1].copy()
    return masks

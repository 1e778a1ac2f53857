"""Fashionpedia images and instances as mmdet inputs: resize (keep ratio), flip, normalise, pad.

Each item is ``(image, data_sample)``: a normalised ``(3, H, W)`` float tensor padded (bottom and right, with
zeros, i.e. the ImageNet mean) to the recipe's ``img_size``, and an mmdet ``DetDataSample`` whose
``gt_instances`` hold ``bboxes`` (xyxy, input pixels), ``labels`` (0-based category index) and ``masks``
(``BitmapMasks`` at the padded size), and whose metainfo carries what mmdet's heads read (``img_shape``,
``pad_shape``, ``batch_input_shape``, ``ori_shape``, ``scale_factor``) so that ``predict(rescale=True)``
returns boxes and masks in original image pixels. Crowd annotations (``iscrowd: 1``) are not trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from saip_bench.errors import DataFormatError
from saip_bench.tasks.fashion.data.fashionpedia import FashionImage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        flip: probability of a horizontal flip (0 for evaluation); drawn from torch's RNG, which the
            DataLoader reseeds per worker and epoch from its generator.
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
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        from saip_bench.mm import setup_mm

        setup_mm("mmdet")  # mmdet's mask structures import mmcv's ops; cached after the first call
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData

        item = self.images[index]
        try:
            with Image.open(item.path) as img:
                rgb = img.convert("RGB")
        except OSError as err:
            raise DataFormatError(item.path, f"cannot read image ({err})") from None
        if rgb.size != (item.width, item.height):
            raise DataFormatError(
                item.path, f"image is {rgb.size[0]}x{rgb.size[1]}, the json says {item.width}x{item.height}"
            )
        pad_h, pad_w = self.img_size
        scale = min(pad_h / item.height, pad_w / item.width)
        new_w, new_h = max(1, round(item.width * scale)), max(1, round(item.height * scale))
        flip = self.flip > 0 and float(torch.rand(())) < self.flip
        pixels = torch.from_numpy(np.asarray(rgb.resize((new_w, new_h), Image.BILINEAR)).copy())
        pixels = (pixels.permute(2, 0, 1).float() / 255.0 - self.mean) / self.std
        anns = [a for a in item.annotations if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes *= torch.tensor([new_w / item.width, new_h / item.height] * 2)
        masks = np.zeros((len(anns), pad_h, pad_w), dtype=np.uint8)
        if anns:
            full = np.stack([decode_segmentation(a["segmentation"], item.height, item.width) for a in anns])
            small = F.interpolate(torch.from_numpy(full).float()[None], size=(new_h, new_w), mode="nearest")
            masks[:, :new_h, :new_w] = small[0].numpy().astype(np.uint8)
        if flip:
            pixels = pixels.flip(-1)
            boxes = torch.stack([new_w - boxes[:, 2], boxes[:, 1], new_w - boxes[:, 0], boxes[:, 3]], dim=1)
            masks[:, :new_h, :new_w] = masks[:, :new_h, new_w - 1 :: -1].copy()
        image = torch.zeros(3, pad_h, pad_w)
        image[:, :new_h, :new_w] = pixels
        sample = DetDataSample(
            metainfo={
                "img_id": item.id,
                "img_path": str(item.path),
                "ori_shape": (item.height, item.width),
                "img_shape": (new_h, new_w),
                "pad_shape": (pad_h, pad_w),
                "batch_input_shape": (pad_h, pad_w),
                "scale_factor": (new_w / item.width, new_h / item.height),
                "flip": bool(flip),
                "flip_direction": "horizontal" if flip else None,
            }
        )
        gt = InstanceData()
        gt.bboxes = boxes
        gt.labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.long)
        gt.masks = BitmapMasks(masks, pad_h, pad_w)
        sample.gt_instances = gt
        return image, sample


def collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[Any]]:
    """Stack the (equally padded) images; keep the data samples as a list."""
    images, samples = zip(*batch, strict=True)
    return torch.stack(images), list(samples)

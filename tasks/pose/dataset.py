"""Torch datasets of top-down person crops: training samples with UDP heatmap targets, and eval crops.

Training items are ``{"image", "heatmaps", "weights"}``: the augmented crop, the mmpose ``UDPHeatmap``
codec's Gaussian targets (heatmap 1/4 of the input) and per-keypoint weights (0 for unlabelled keypoints and
for keypoints the crop cuts off). Eval items are ``{"image", "center", "scale", "index"}``; the model flips
the crop itself (flip test) and maps its predictions back to the image from ``center`` / ``scale``.
Every random draw comes from a generator seeded by ``(seed, epoch, index)``, so a run is reproducible
whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from saip_bench.evaluate.images import read_rgb
from saip_bench.tasks.pose.data.coco_format import PoseInstance
from saip_bench.tasks.pose.transforms import (
    AugmentSettings,
    box_to_center_scale,
    random_box,
    to_tensor,
    transform_points,
    udp_matrix,
    warp,
)


class PoseCrops(Dataset):
    """Top-down crops of ``instances`` at ``img_size`` = (H, W).

    Args:
        instances: the persons (ground-truth boxes, or detections for evaluation).
        img_size: ``(H, W)`` of the crops.
        flip_indices: the keypoint each keypoint becomes under a horizontal flip.
        train: augment and return heatmap targets; otherwise return eval crops.
        augment: the augmentation settings (training only).
        sigma: heatmap Gaussian sigma in heatmap pixels (mmpose: 2 at 64x48).
        seed: seed of the augmentation draws.
    """

    def __init__(
        self,
        instances: Sequence[PoseInstance],
        img_size: tuple[int, int],
        flip_indices: Sequence[int],
        *,
        train: bool,
        augment: AugmentSettings | None = None,
        sigma: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.instances = list(instances)
        self.height, self.width = int(img_size[0]), int(img_size[1])
        self.flip_indices = np.asarray(flip_indices, dtype=np.int64)
        self.train = train
        self.augment = augment or AugmentSettings()
        self.sigma = float(sigma)
        self.seed = int(seed)
        self._draw = 0
        self._codec = None

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def codec(self) -> Any:
        if self._codec is None:
            from saip_bench.mm import setup_mm

            setup_mm("mmpose")  # also in spawned loader workers
            from mmpose.codecs import UDPHeatmap

            size = (self.width, self.height)
            self._codec = UDPHeatmap(
                input_size=size, heatmap_size=(self.width // 4, self.height // 4), sigma=self.sigma
            )
        return self._codec

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for ``epoch``."""
        self._draw = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        inst = self.instances[index]
        image = np.asarray(read_rgb(inst.image_path))
        size = (self.width, self.height)
        center, scale = box_to_center_scale(inst.bbox, self.width / self.height)
        if not self.train:
            crop = warp(image, udp_matrix(center, scale, 0.0, size), size)
            return {
                "image": to_tensor(crop),
                "center": torch.from_numpy(center),
                "scale": torch.from_numpy(scale),
                "index": torch.tensor(index),
            }
        rng = np.random.default_rng([self.seed, self._draw, index])
        center, scale, rot = random_box(center, scale, rng, self.augment)
        matrix = udp_matrix(center, scale, rot, size)
        crop = warp(image, matrix, size)
        points = transform_points(inst.keypoints[:, :2], matrix)
        visible = (inst.keypoints[:, 2] > 0).astype(np.float32)
        if rng.random() < self.augment.flip:
            crop = crop[:, ::-1]
            points = np.stack([(self.width - 1) - points[:, 0], points[:, 1]], axis=1)[self.flip_indices]
            visible = visible[self.flip_indices]
        encoded = self.codec.encode(points[None].astype(np.float32), visible[None])
        return {
            "image": to_tensor(np.ascontiguousarray(crop)),
            "heatmaps": torch.from_numpy(encoded["heatmaps"].astype(np.float32)),
            "weights": torch.from_numpy(encoded["keypoint_weights"][0].astype(np.float32)),
        }

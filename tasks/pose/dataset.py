"""Torch datasets of top-down person crops: training samples with UDP heatmap targets, and eval crops.

Training items are ``{"image", "heatmaps", "weights"}``: the augmented crop, the mmpose ``UDPHeatmap``
codec's Gaussian targets (heatmap 1/4 of the input) and per-keypoint weights (0 for unlabelled keypoints and
for keypoints the crop cuts off). Eval items are ``{"image", "center", "scale", "index"}``; the model flips
the crop itself (flip test) and maps its predictions back to the image from ``center`` / ``scale``.
Training draws come from numpy's global RNG, which the engine's training loader
(:func:`saip_bench.engine.make_train_loader`) seeds for every sample from ``(seed, epoch, position)``: the
augmentation of a run is the same whatever the number of loader workers, changes from epoch to epoch and
continues exactly after a resume.
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
        sigma: heatmap Gaussian sigma in heatmap pixels (mmpose: 2 at 64x48).
        flip: probability of a horizontal flip (training only; the other augmentation arguments too).
        shift_factor: box-center shift as a fraction of the box size, drawn with probability ``shift_prob``.
        shift_prob: probability of a shift.
        scale_factor: ``(min, max)`` multiplier of the box size.
        rotate_factor: maximum rotation in degrees, drawn with probability ``rotate_prob``.
        rotate_prob: probability of a rotation.

    The augmentation arguments default to no augmentation; the recipe's values come from the pose
    defaults file (``configs/evaluate/defaults/pose.yaml``).
    """

    def __init__(
        self,
        instances: Sequence[PoseInstance],
        img_size: tuple[int, int],
        flip_indices: Sequence[int],
        *,
        train: bool,
        sigma: float = 2.0,
        flip: float = 0.0,
        shift_factor: float = 0.0,
        shift_prob: float = 0.0,
        scale_factor: Sequence[float] = (1.0, 1.0),
        rotate_factor: float = 0.0,
        rotate_prob: float = 0.0,
    ) -> None:
        self.instances = list(instances)
        self.height, self.width = int(img_size[0]), int(img_size[1])
        self.flip_indices = np.asarray(flip_indices, dtype=np.int64)
        self.train = train
        self.flip = float(flip)
        self.box_jitter = {
            "shift_factor": float(shift_factor), "shift_prob": float(shift_prob),
            "scale_factor": (float(scale_factor[0]), float(scale_factor[1])),
            "rotate_factor": float(rotate_factor), "rotate_prob": float(rotate_prob),
        }  # fmt: skip
        self.sigma = float(sigma)
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
        # One generator per sample, seeded from numpy's global RNG: the engine's loader seeds that for
        # every sample (SeededSamples), so the draws follow (run seed, epoch, position).
        rng = np.random.default_rng(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        center, scale, rot = random_box(center, scale, rng, **self.box_jitter)
        matrix = udp_matrix(center, scale, rot, size)
        crop = warp(image, matrix, size)
        points = transform_points(inst.keypoints[:, :2], matrix)
        visible = (inst.keypoints[:, 2] > 0).astype(np.float32)
        if rng.random() < self.flip:
            crop = crop[:, ::-1]
            points = np.stack([(self.width - 1) - points[:, 0], points[:, 1]], axis=1)[self.flip_indices]
            visible = visible[self.flip_indices]
        encoded = self.codec.encode(points[None].astype(np.float32), visible[None])
        return {
            "image": to_tensor(np.ascontiguousarray(crop)),
            "heatmaps": torch.from_numpy(encoded["heatmaps"].astype(np.float32)),
            "weights": torch.from_numpy(encoded["keypoint_weights"][0].astype(np.float32)),
        }

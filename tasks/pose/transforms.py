"""Top-down crops with the unbiased data processing (UDP) of Huang et al., CVPR 2020, as mmpose does it.

A person box becomes a center and a scale (the box enlarged by ``padding`` = 1.25 and widened or heightened
to the input's aspect ratio: mmpose's ``GetBBoxCenterScale`` + ``TopdownAffine``). UDP measures sizes in
pixel spacings (``W - 1``), so the crop's pixel ``x`` sits at ``center - scale / 2 + x * scale / (W - 1)``
in the image (the model maps its predictions back, see :func:`saip_bench.tasks.pose.model.eval_samples`).
Training adds mmpose's ``RandomBBoxTransform`` (shift, scale, rotation, each a clipped normal draw) and a
horizontal flip of the crop that swaps left and right keypoints.
"""

from __future__ import annotations

import numpy as np

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD


def box_to_center_scale(
    bbox: tuple[float, float, float, float], aspect: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` of an xywh box, padded and fixed to ``aspect`` = input width / height."""
    x, y, w, h = bbox
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    w, h = w * padding, h * padding
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float32)


def udp_matrix(center: np.ndarray, scale: np.ndarray, rot: float, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 image -> crop matrix of UDP (``size`` = crop (W, H)); mmpose's ``get_udp_warp_matrix``."""
    from saip_bench.mm import setup_mm

    setup_mm("mmpose")
    from mmpose.structures.bbox import get_udp_warp_matrix

    return get_udp_warp_matrix(center, scale, rot, output_size=size)


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The crop of ``size`` = (W, H) under ``matrix`` (bilinear, black outside the image)."""
    import cv2

    return cv2.warpAffine(image, matrix, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to ``(K, 2)`` points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def random_box(
    center: np.ndarray,
    scale: np.ndarray,
    rng: np.random.Generator,
    *,
    shift_factor: float,
    shift_prob: float,
    scale_factor: tuple[float, float],
    rotate_factor: float,
    rotate_prob: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """mmpose's ``RandomBBoxTransform``: shifted center, rescaled scale, rotation in degrees.

    Args:
        center: the box center.
        scale: the box size (w, h).
        rng: the generator of this sample's draws.
        shift_factor: center shift as a fraction of the box size, drawn with probability ``shift_prob``.
        shift_prob: probability of a shift.
        scale_factor: ``(min, max)`` multiplier of the box size.
        rotate_factor: maximum rotation in degrees, drawn with probability ``rotate_prob``.
        rotate_prob: probability of a rotation.
    """
    if rng.random() < shift_prob:
        center = center + np.clip(rng.normal(size=2), -1, 1).astype(np.float32) * shift_factor * scale
    low, high = scale_factor
    mu, sigma = (high + low) / 2, (high - low) / 2
    scale = scale * float(np.clip(rng.normal(), -1, 1) * sigma + mu)
    rot = float(np.clip(rng.normal(), -1, 1) * rotate_factor) if rng.random() < rotate_prob else 0.0
    return center, scale, rot


def to_tensor(crop: np.ndarray):
    """``(H, W, 3)`` uint8 RGB -> ImageNet-normalised ``(3, H, W)`` float tensor."""
    import torch

    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
    std = np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0
    return torch.from_numpy(((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1).copy())

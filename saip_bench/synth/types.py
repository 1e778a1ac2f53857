"""Plain data records the synthetic generator produces; every dataset writer consumes these.

Coordinates are pixels in the image they belong to, x right, y down. Keypoint arrays are float32 ``(K, 3)``
rows of ``(x, y, v)`` with COCO visibility: 0 not labelled / outside, 1 labelled but occluded, 2 visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: LIP's 20 part labels (0 = background). CIHP uses the same ids except that 10 is torso-skin.
LIP_CLASSES: tuple[str, ...] = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuits",
    "scarf",
    "skirt",
    "face",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
    "left-shoe",
    "right-shoe",
)
CIHP_CLASSES: tuple[str, ...] = LIP_CLASSES[:10] + ("torso-skin",) + LIP_CLASSES[11:]

#: COCO-17 keypoint names in COCO order.
COCO17: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


@dataclass
class Identity:
    """What a person looks like; constant across cameras.

    ``attributes`` are booleans named like PA-100K's and PETA's, all except the viewpoint (Front / Side /
    Back), which depends on the camera and is added to each :class:`PersonSample`'s attributes.
    """

    pid: int
    attributes: dict[str, bool]
    appearance: dict[str, object]  # colours, patterns, body proportions: renderer-specific, picklable


@dataclass
class PersonSample:
    """One rendered person crop (re-ID / attribute / LUP / text-retrieval style)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    pid: int
    camid: int
    attributes: dict[str, bool]
    caption: str
    keypoints17: np.ndarray  # (17, 3) float32
    keypoints133: (
        np.ndarray
    )  # (133, 3) float32, COCO-WholeBody order: body 17, feet 6, face 68, lhand 21, rhand 21
    part_mask: np.ndarray  # (H, W) uint8 LIP ids, 0 background
    bbox: tuple[float, float, float, float]  # xywh of the person inside the crop


@dataclass
class ScenePerson:
    """One person inside a multi-person scene."""

    pid: int
    full_box: tuple[float, float, float, float]  # xywh, whole body including occluded parts
    visible_box: tuple[float, float, float, float]  # xywh of the visible part
    head_box: tuple[float, float, float, float]  # xywh
    keypoints17: np.ndarray  # (17, 3)
    keypoints133: np.ndarray  # (133, 3)
    instance_mask: np.ndarray  # (H, W) bool, visible pixels of this person
    occlusion: float  # fraction of the full body hidden by others or the border, 0..1
    attributes: dict[str, bool] = field(default_factory=dict)


@dataclass
class SceneSample:
    """A multi-person scene (CrowdHuman / CIHP / COCO / Fashionpedia style)."""

    image: np.ndarray  # (H, W, 3) uint8
    persons: list[ScenePerson]
    part_mask: np.ndarray  # (H, W) uint8 LIP ids over all persons
    instance_ids: np.ndarray  # (H, W) int32, 0 background, i+1 for persons[i]
    ignore_boxes: list[tuple[float, float, float, float]]  # xywh regions like CrowdHuman's "mask" tag

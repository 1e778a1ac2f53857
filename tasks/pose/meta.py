"""Keypoint metadata of COCO-Keypoints and COCO-WholeBody: names, OKS sigmas, flip pairs, part slices.

The numbers come from mmpose's dataset files (``configs/_base_/datasets/coco.py`` and ``coco_wholebody.py``
inside the installed package), which copy them from the COCO and COCO-WholeBody evaluation code; reading them
from there keeps one source of truth. The files are plain Python dicts, read with mmengine's ``Config``
without importing mmpose itself.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saip_bench.errors import SaipError

#: COCO-WholeBody's parts in keypoint order: (name, number of keypoints, annotation field).
WHOLEBODY_PARTS: tuple[tuple[str, int, str], ...] = (
    ("body", 17, "keypoints"),
    ("foot", 6, "foot_kpts"),
    ("face", 68, "face_kpts"),
    ("lefthand", 21, "lefthand_kpts"),
    ("righthand", 21, "righthand_kpts"),
)

_META_FILES = {"coco_keypoints": "coco.py", "coco_wholebody": "coco_wholebody.py"}


@dataclass(frozen=True)
class KeypointMeta:
    """What the model, the transforms and the metric need to know about a keypoint set.

    Attributes:
        name: dataset registry name.
        names: keypoint names in order.
        sigmas: OKS sigmas, one per keypoint.
        flip_indices: ``flip_indices[i]`` is the keypoint that ``i`` becomes in a mirrored image.
        skeleton: pairs of keypoint ids (1-based, as COCO's category record stores them).
    """

    name: str
    names: tuple[str, ...]
    sigmas: np.ndarray
    flip_indices: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.names)


def _mmpose_dataset_file(file_name: str) -> Path:
    spec = importlib.util.find_spec("mmpose")
    if spec is None or spec.origin is None:
        raise SaipError("mmpose is not installed; the pose task needs it (see README, 'The OpenMMLab stack')")
    path = Path(spec.origin).parent / ".mim" / "configs" / "_base_" / "datasets" / file_name
    if not path.is_file():
        raise SaipError(f"{path}: mmpose's dataset metadata file is missing; reinstall mmpose")
    return path


@functools.cache
def keypoint_meta(dataset: str) -> KeypointMeta:
    """The keypoint metadata of ``"coco_keypoints"`` or ``"coco_wholebody"``."""
    from mmengine.config import Config

    if dataset not in _META_FILES:
        raise KeyError(f"no keypoint metadata for {dataset!r}; known: {', '.join(_META_FILES)}")
    info = Config.fromfile(str(_mmpose_dataset_file(_META_FILES[dataset]))).dataset_info
    points = [info.keypoint_info[i] for i in sorted(info.keypoint_info)]
    names = tuple(str(p["name"]) for p in points)
    index = {name: i for i, name in enumerate(names)}
    flip = tuple(index[p["swap"]] if p["swap"] else i for i, p in enumerate(points))
    skeleton = tuple(
        (index[link["link"][0]] + 1, index[link["link"][1]] + 1)
        for _, link in sorted(info.skeleton_info.items())
    )
    return KeypointMeta(dataset, names, np.asarray(info.sigmas, dtype=np.float64), flip, skeleton)

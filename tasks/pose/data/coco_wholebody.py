"""COCO-WholeBody v1.0: layout, loader, format check and synthetic writer.

Layout (``coco_wholebody/``)::

    annotations/coco_wholebody_train_v1.0.json
    annotations/coco_wholebody_val_v1.0.json
    train2017/000000000009.jpg ...
    val2017/000000000139.jpg ...

Each annotation is a COCO person record plus ``foot_kpts`` (6), ``face_kpts`` (68), ``lefthand_kpts`` (21)
and ``righthand_kpts`` (21): 133 keypoints in the order body, feet, face, left hand, right hand.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.tasks.pose.data.coco_format import Parts, PoseSplit, check_split, load_split
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS

FOLDER = "coco_wholebody"
JSON_NAMES = {s: f"annotations/coco_wholebody_{s}_v1.0.json" for s in ("train", "val")}
IMAGE_DIRS = {s: f"{s}2017" for s in ("train", "val")}
PARTS: Parts = tuple((key, count) for _, count, key in WHOLEBODY_PARTS)


def load(root: str | Path, split: str) -> PoseSplit:
    """The ``"train"`` or ``"val"`` split of a COCO-WholeBody folder (133 keypoints per person)."""
    root = Path(root)
    return load_split(root / JSON_NAMES[split], root / IMAGE_DIRS[split], PARTS)


def check(root: str | Path) -> dict[str, int]:
    """Validate both jsons (fields, 17/6/68/21/21 x 3 keypoints, ids) and that every image exists.

    Returns:
        ``{"train_images", "train_persons", "val_images", "val_persons"}``.

    Raises:
        DataFormatError: naming the file and the first bad record.
    """
    root = Path(root)
    counts = {}
    for split in ("train", "val"):
        for key, value in check_split(root / JSON_NAMES[split], root / IMAGE_DIRS[split], PARTS).items():
            counts[f"{split}_{key}"] = value
    return counts


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic COCO-WholeBody of ``images`` multi-person scenes (80 % train, 20 % val).

    ``ids`` is accepted for the common writer signature; scene persons are drawn fresh for every image.
    """
    from saip_bench.tasks.pose.data.synth import write_coco_pose

    del ids
    write_coco_pose(
        Path(out), images=images, seed=seed, json_names=JSON_NAMES, image_dirs=IMAGE_DIRS, wholebody=True
    )

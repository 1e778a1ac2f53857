"""COCO-Keypoints (person keypoints 2017): layout, loader, format check and synthetic writer.

Layout (``coco/``)::

    annotations/person_keypoints_train2017.json
    annotations/person_keypoints_val2017.json
    train2017/000000000009.jpg ...
    val2017/000000000139.jpg ...

Each annotation carries the 17 COCO keypoints; see :mod:`saip_bench.tasks.pose.data.coco_format`.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.tasks.pose.data.coco_format import Parts, PoseSplit, check_split, load_split

FOLDER = "coco"
JSON_NAMES = {s: f"annotations/person_keypoints_{s}2017.json" for s in ("train", "val")}
IMAGE_DIRS = {s: f"{s}2017" for s in ("train", "val")}
PARTS: Parts = (("keypoints", 17),)


def load(root: str | Path, split: str) -> PoseSplit:
    """The ``"train"`` or ``"val"`` split of a COCO-Keypoints folder."""
    root = Path(root)
    return load_split(root / JSON_NAMES[split], root / IMAGE_DIRS[split], PARTS)


def check(root: str | Path) -> dict[str, int]:
    """Validate both jsons (fields, 17 x 3 keypoints, ids) and that every image exists.

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
    """Write a synthetic COCO-Keypoints of ``images`` multi-person scenes (80 % train, 20 % val).

    ``ids`` is accepted for the common writer signature; scene persons are drawn fresh for every image.
    """
    from saip_bench.tasks.pose.data.synth import write_coco_pose

    del ids
    write_coco_pose(
        Path(out), images=images, seed=seed, json_names=JSON_NAMES, image_dirs=IMAGE_DIRS, wholebody=False
    )

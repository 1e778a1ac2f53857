"""Synthetic COCO-Keypoints / COCO-WholeBody: multi-person scenes written in the real COCO json layout.

Each image is a :meth:`saip_bench.synth.SynthWorld.render_scene` street or indoor scene. Every person big
enough to learn from (full box at least :data:`MIN_PERSON_HEIGHT` pixels tall inside the image, at least
:data:`MIN_KEYPOINTS` labelled body keypoints) becomes one annotation: ``bbox`` is the full-body box clipped
to the image, ``area`` the pixel count of its instance mask (also written as an RLE ``segmentation``),
``keypoints`` the generator's COCO-17 points with COCO visibility (0 unlabelled, written as ``0, 0, 0``;
1 occluded; 2 visible). Smaller or hidden persons are left unlabelled, as COCO leaves tiny people.
The whole-body file adds the foot, face and hand points of the generator's 133-point skeleton, part boxes
around each part's labelled points, and the ``*_valid`` flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from saip_bench.dataset_spec import SynthOptions
from saip_bench.tasks.pose.data import coco_keypoints, coco_wholebody
from saip_bench.tasks.pose.data.coco_format import CocoPoseFormat, clip_box
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS, keypoint_meta

MIN_PERSON_HEIGHT = 48
MIN_KEYPOINTS = 4
SCENE_SIZE = (224, 288)  # (H, W): people from ~50 px to the full height
PERSONS_PER_SCENE = (1, 4)
VAL_FRACTION = 0.2
JPEG_QUALITY = 90


def _flat(points: np.ndarray) -> list[float]:
    points = points.astype(np.float64).copy()
    points[points[:, 2] <= 0] = 0.0
    return [round(float(v), 2) for v in points.reshape(-1)]


def _part_box(points: np.ndarray) -> list[float]:
    labelled = points[points[:, 2] > 0, :2]
    if len(labelled) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    (x0, y0), (x1, y1) = labelled.min(axis=0), labelled.max(axis=0)
    pad = 0.1 * max(x1 - x0, y1 - y0) + 1.0
    return [round(float(v), 2) for v in (x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)]


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(
    person: Any, ann_id: int, image_id: int, size: tuple[int, int], wholebody: bool
) -> dict | None:
    height, width = size
    x, y, w, h = clip_box(list(person.full_box), width, height)
    body = person.keypoints133[:17]
    num_keypoints = int((body[:, 2] > 0).sum())
    if h < MIN_PERSON_HEIGHT or num_keypoints < MIN_KEYPOINTS:
        return None
    ann: dict[str, Any] = {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "bbox": [round(v, 2) for v in (x, y, w, h)], "area": float(person.instance_mask.sum()),
        "num_keypoints": num_keypoints, "keypoints": _flat(body), "segmentation": _rle(person.instance_mask),
    }  # fmt: skip
    if wholebody:
        start = 0
        for name, count, key in WHOLEBODY_PARTS:
            points = person.keypoints133[start : start + count]
            start += count
            if name == "body":
                continue
            ann[key] = _flat(points)
            ann[f"{name}_valid"] = bool((points[:, 2] > 0).any())
            if name != "foot":
                ann[f"{name}_box"] = _part_box(points)
    return ann


def _categories() -> list[dict[str, Any]]:
    meta = keypoint_meta("coco_keypoints")
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(meta.names),
                "skeleton": [list(pair) for pair in meta.skeleton]}  # fmt: skip
    return [category]


def write_coco_pose(out: Path, options: SynthOptions, fmt: CocoPoseFormat, *, wholebody: bool) -> None:
    """Render ``options.images`` scenes, 80/20 into train/val, and write images + one json per split.

    Args:
        out: the dataset folder (created).
        options: ``images`` is the total over both splits (at least one per split when ``images >= 2``);
            ``seed`` seeds the world and the scenes (the same seed writes the same files). ``ids`` is
            unused: scene persons are drawn fresh for every image.
        fmt: where the dataset keeps its annotation files and image folders.
        wholebody: write COCO-WholeBody's extra part fields.
    """
    from saip_bench.synth import SynthWorld

    images, seed = options.images, options.seed
    world = SynthWorld(seed)
    n_val = max(1, int(round(images * VAL_FRACTION))) if images >= 2 else 0
    counts = {"train": images - n_val, "val": n_val}
    image_id, ann_id = 1, 1
    for split in ("train", "val"):
        folder = out / fmt.image_dirs[split]
        folder.mkdir(parents=True, exist_ok=True)
        records, annotations = [], []
        for _ in range(counts[split]):
            rng = np.random.default_rng([seed, 7, image_id])
            n_persons = int(rng.integers(PERSONS_PER_SCENE[0], PERSONS_PER_SCENE[1] + 1))
            scene = world.render_scene(n_persons, size=SCENE_SIZE, rng=rng)
            file_name = f"{image_id:012d}.jpg"
            Image.fromarray(scene.image).save(folder / file_name, quality=JPEG_QUALITY)
            height, width = scene.image.shape[:2]
            records.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
            for person in scene.persons:
                ann = _annotation(person, ann_id, image_id, (height, width), wholebody)
                if ann is not None:
                    annotations.append(ann)
                    ann_id += 1
            image_id += 1
        coco = {
            "info": {"description": f"saip-bench synthetic {fmt.name}", "version": "1.0"},
            "licenses": [],
            "images": records,
            "annotations": annotations,
            "categories": _categories(),
        }
        json_path = out / fmt.json_names[split]
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(coco), encoding="utf-8")


def write_coco_keypoints(out: Path, options: SynthOptions) -> None:
    """A synthetic COCO-Keypoints of ``options.images`` multi-person scenes (80 % train, 20 % val)."""
    write_coco_pose(out, options, coco_keypoints.FORMAT, wholebody=False)


def write_coco_wholebody(out: Path, options: SynthOptions) -> None:
    """A synthetic COCO-WholeBody of ``options.images`` multi-person scenes (80 % train, 20 % val)."""
    write_coco_pose(out, options, coco_wholebody.FORMAT, wholebody=True)

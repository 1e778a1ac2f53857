"""The COCO keypoint json shared by COCO-Keypoints and COCO-WholeBody: validation, reading, writing.

A file holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories`` (the person category
with its keypoint names and skeleton) and ``annotations``: one person each, with ``id``, ``image_id``,
``category_id``, ``bbox`` (xywh), ``area``, ``iscrowd``, ``num_keypoints`` and ``keypoints``
(``[x, y, v] * K``, ``v`` 0 unlabelled, 1 labelled but occluded, 2 visible). COCO-WholeBody adds, per part,
``foot_kpts`` (6), ``face_kpts`` (68), ``lefthand_kpts`` (21), ``righthand_kpts`` (21), the part boxes
``face_box``, ``lefthand_box``, ``righthand_box`` and the flags ``face_valid``, ``lefthand_valid``,
``righthand_valid``, ``foot_valid``.

Every problem is reported as one :class:`DataFormatError` naming the file and the record, e.g.
``person_keypoints_val2017.json: annotations[5] (id 17) has no 'keypoints'``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.data_check import check_image_headers
from saip_bench.errors import DataFormatError

log = logging.getLogger(__name__)

#: (annotation field, number of keypoints) for each part a format stores, in keypoint order.
Parts = tuple[tuple[str, int], ...]


@dataclass
class PoseInstance:
    """One person to crop: an annotated person with ground-truth box, or a detection.

    Attributes:
        image_path: the image file.
        image_id: the COCO image id.
        bbox: ``(x, y, w, h)`` clipped to the image, as mmpose's loader clips it.
        keypoints: ``(K, 3)`` float32 ``(x, y, v)`` over all parts, in keypoint order (zeros for detections).
        bbox_score: 1 for ground-truth boxes, the detector's score otherwise.
        ann_id: the annotation id (-1 for detections).
    """

    image_path: Path
    image_id: int
    bbox: tuple[float, float, float, float]
    keypoints: np.ndarray
    bbox_score: float = 1.0
    ann_id: int = -1


@dataclass
class PoseSplit:
    """A split read from its json: the raw json (the metric's ground truth) and the trainable persons.

    Attributes:
        json_path: the annotation file.
        image_dir: the folder of its images.
        coco: the parsed json, unchanged.
        instances: non-crowd persons with at least one labelled keypoint, boxes clipped to the image.
        image_paths: image id -> file.
    """

    json_path: Path
    image_dir: Path
    coco: dict[str, Any]
    instances: list[PoseInstance] = field(default_factory=list)
    image_paths: dict[int, Path] = field(default_factory=dict)


def _require(path: Path, record: dict[str, Any], where: str, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in record:
        raise DataFormatError(path, f"{where} has no {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise DataFormatError(path, f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


#: COCO-WholeBody's part boxes (xywh, all zeros when the part is not annotated), checked like ``bbox``.
PART_BOXES = ("face_box", "lefthand_box", "righthand_box")


def _check_finite(path: Path, where: str, key: str, values: list[Any]) -> None:
    """Every entry a finite number (json.load reads ``NaN`` and ``Infinity`` without complaint)."""
    for value in values:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DataFormatError(path, f"{where}: {key!r} holds a non-number {value!r}")
        if not math.isfinite(value):
            raise DataFormatError(path, f"{where}: {key!r} contains {value!r}, not a finite number")


def _check_box(path: Path, where: str, key: str, box: Any) -> None:
    """An ``[x, y, w, h]`` box: 4 finite numbers, width and height not negative."""
    if not isinstance(box, list) or len(box) != 4:
        raise DataFormatError(path, f"{where}: {key!r} must be 4 numbers [x, y, w, h]")
    _check_finite(path, where, key, box)
    if box[2] < 0 or box[3] < 0:
        raise DataFormatError(path, f"{where}: {key!r} has a negative width or height {box}")


def validate(path: Path, data: Any, parts: Parts) -> None:
    """Check a parsed COCO keypoint json, structure and values; raise on the first problem, naming its record.

    Values: images have positive sizes; ``bbox`` (and WholeBody's part boxes) are 4 finite numbers with
    non-negative width and height; ``area`` and every keypoint coordinate are finite; every visibility flag
    is 0, 1 or 2. A box reaching outside its image is not an error: mmpose's loader clips it to the image
    (:func:`clip_box`) and so does :func:`load_split`, counting the clipped boxes in one warning.

    Args:
        path: the file (for messages).
        data: the parsed json.
        parts: the keypoint fields every annotation must carry and their lengths in keypoints.
    """
    if not isinstance(data, dict):
        raise DataFormatError(path, "not a COCO json object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataFormatError(path, f"missing or non-list {key!r}")
    sizes: dict[int, tuple[int, int]] = {}
    for i, image in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            raise DataFormatError(path, f"{where} is not an object")
        image_id = _require(path, image, where, "id", int)
        _require(path, image, f"{where} (id {image_id})", "file_name", str)
        width = _require(path, image, f"{where} (id {image_id})", "width", int)
        height = _require(path, image, f"{where} (id {image_id})", "height", int)
        if width < 1 or height < 1:
            raise DataFormatError(path, f"{where} (id {image_id}): width and height must be positive")
        if image_id in sizes:
            raise DataFormatError(path, f"{where}: duplicate image id {image_id}")
        sizes[image_id] = (width, height)
    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataFormatError(path, f"annotations[{i}] is not an object")
        where = f"annotations[{i}] (id {ann.get('id', '?')})"
        ann_id = _require(path, ann, where, "id", int)
        if ann_id in ann_ids:
            raise DataFormatError(path, f"{where}: duplicate annotation id")
        ann_ids.add(ann_id)
        image_id = _require(path, ann, where, "image_id", int)
        if image_id not in sizes:
            raise DataFormatError(path, f"{where}: image_id {image_id} is not in 'images'")
        _check_box(path, where, "bbox", _require(path, ann, where, "bbox", list))
        for key in PART_BOXES:
            if key in ann:
                _check_box(path, where, key, ann[key])
        _require(path, ann, where, "iscrowd", int)
        _check_finite(path, where, "area", [_require(path, ann, where, "area", (int, float))])
        _require(path, ann, where, "num_keypoints", int)
        for key, count in parts:
            values = _require(path, ann, where, key, list)
            if len(values) != 3 * count:
                raise DataFormatError(
                    path, f"{where}: {key!r} has {len(values)} values, expected {3 * count} ({count} x 3)"
                )
            _check_finite(path, where, key, values)
            flags = values[2::3]
            bad = next((i for i, v in enumerate(flags) if v not in (0, 1, 2)), None)
            if bad is not None:
                raise DataFormatError(
                    path, f"{where}: {key!r} keypoint {bad} has visibility {flags[bad]!r}, not 0, 1 or 2"
                )


def read_json(path: Path) -> Any:
    """Parse ``path``; a missing or malformed file is one :class:`DataFormatError`."""
    if not path.is_file():
        raise DataFormatError(path, "annotation file is missing")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"not valid JSON ({err})") from None


def clip_box(bbox: list[float], width: int, height: int) -> tuple[float, float, float, float]:
    """``bbox`` (xywh) clipped to the image, as mmpose's COCO loader does."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x2, y2 = np.clip(x + w, 0, width - 1), np.clip(y + h, 0, height - 1)
    return float(x1), float(y1), float(x2 - x1), float(y2 - y1)


def load_split(json_path: Path, image_dir: Path, parts: Parts) -> PoseSplit:
    """Read one split: validate the json and collect the persons mmpose's top-down loader keeps.

    Crowd annotations and persons without a labelled keypoint are left out of ``instances`` (they stay in
    the json, where COCOeval ignores them). Every image the json lists must exist with a readable header
    (read without decoding, so a run stops on a bad file before its first step).

    Raises:
        DataFormatError: the json is missing, malformed, or a record lacks a field (message names it).
    """
    data = read_json(json_path)
    validate(json_path, data, parts)
    if not image_dir.is_dir():
        raise DataFormatError(image_dir, "image folder is missing")
    for i, image in enumerate(data["images"]):
        file = image_dir / image["file_name"]
        if not file.is_file():
            raise DataFormatError(json_path, f"images[{i}] (id {image['id']}): {file} does not exist")
    check_image_headers((image_dir / image["file_name"] for image in data["images"]), listed_in=json_path)
    sizes = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
    split = PoseSplit(json_path, image_dir, data)
    split.image_paths = {img["id"]: image_dir / img["file_name"] for img in data["images"]}
    clipped = 0
    for ann in data["annotations"]:
        keypoints = np.concatenate(
            [np.asarray(ann[key], dtype=np.float32).reshape(-1, 3) for key, _ in parts], axis=0
        )
        if ann["iscrowd"] or not (keypoints[:, 2] > 0).any():
            continue
        width, height = sizes[ann["image_id"]]
        bbox = clip_box(ann["bbox"], width, height)
        x, y, w, h = ann["bbox"]
        clipped += bool(x < 0 or y < 0 or x + w > width - 1 or y + h > height - 1)
        if bbox[2] <= 1 or bbox[3] <= 1:
            continue
        split.instances.append(
            PoseInstance(split.image_paths[ann["image_id"]], ann["image_id"], bbox, keypoints, 1.0, ann["id"])
        )
    if clipped:
        log.warning("%s: %d person boxes reach outside their image; clipped to it", json_path.name, clipped)
    return split


def load_detections(
    path: Path, split: PoseSplit, *, score_thr: float, category_id: int = 1
) -> list[PoseInstance]:
    """Persons from a COCO detection-results json (``image_id``, ``category_id``, ``bbox``, ``score``).

    Args:
        path: the detection file.
        split: the split whose images the detections belong to.
        score_thr: detections scoring below it are dropped (mmpose's ``bbox_thr``).
        category_id: the person category.

    Raises:
        DataFormatError: the file is not a list of detections, or names an image the split lacks.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise DataFormatError(path, "a detection file must be a JSON list of {image_id, bbox, score}")
    sizes = {img["id"]: (img["width"], img["height"]) for img in split.coco["images"]}
    num_keypoints = len(split.instances[0].keypoints) if split.instances else 0
    out = []
    for i, det in enumerate(data):
        where = f"[{i}]"
        if not isinstance(det, dict):
            raise DataFormatError(path, f"{where} is not an object")
        image_id = _require(path, det, where, "image_id", int)
        if image_id not in sizes:
            raise DataFormatError(path, f"{where}: image_id {image_id} is not in {split.json_path.name}")
        bbox = _require(path, det, where, "bbox", list)
        score = _require(path, det, where, "score", (int, float))
        _check_box(path, where, "bbox", bbox)
        _check_finite(path, where, "score", [score])
        if det.get("category_id", category_id) != category_id or score < score_thr:
            continue
        box = clip_box(bbox, *sizes[image_id])
        if box[2] <= 1 or box[3] <= 1:
            continue
        keypoints = np.zeros((num_keypoints, 3), np.float32)
        out.append(PoseInstance(split.image_paths[image_id], image_id, box, keypoints, float(score)))
    return out


def check_split(json_path: Path, image_dir: Path, parts: Parts) -> dict[str, int]:
    """Validate one split and that every image it names exists; returns image and person counts."""
    split = load_split(json_path, image_dir, parts)  # images exist and have readable headers
    return {"images": len(split.coco["images"]), "persons": len(split.instances)}


@dataclass(frozen=True)
class CocoPoseFormat:
    """Where one COCO-style pose dataset keeps its files, and the keypoint parts its annotations carry.

    Attributes:
        name: the dataset's registry name.
        json_names: split -> annotation file, relative to the dataset folder.
        image_dirs: split -> image folder, relative to the dataset folder.
        parts: the keypoint fields of every annotation and their lengths in keypoints.
    """

    name: str
    json_names: dict[str, str]
    image_dirs: dict[str, str]
    parts: Parts

    @classmethod
    def of(cls, name: str, json_name: str, parts: Parts) -> CocoPoseFormat:
        """A COCO 2017 layout: ``json_name.format(split)`` annotations, images in ``<split>2017/``."""
        splits = ("train", "val")
        return cls(name, {s: json_name.format(s) for s in splits}, {s: f"{s}2017" for s in splits}, parts)

    def load(self, root: str | Path, split: str) -> PoseSplit:
        """The ``"train"`` or ``"val"`` split of a dataset folder (:func:`load_split`)."""
        root = Path(root)
        return load_split(root / self.json_names[split], root / self.image_dirs[split], self.parts)

    def check(self, root: str | Path) -> dict[str, int]:
        """Validate both splits' jsons (fields, keypoint lengths, ids) and that every image exists.

        Returns:
            ``{"train_images", "train_persons", "val_images", "val_persons"}``.

        Raises:
            DataFormatError: naming the file and the first bad record.
        """
        root = Path(root)
        counts = {}
        for split in ("train", "val"):
            json_path, image_dir = root / self.json_names[split], root / self.image_dirs[split]
            for key, value in check_split(json_path, image_dir, self.parts).items():
                counts[f"{split}_{key}"] = value
        return counts

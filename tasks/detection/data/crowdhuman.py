"""CrowdHuman: the ``.odgt`` annotation format, a validating loader and a format check (writer: .synth).

Layout (``CrowdHuman/``): ``annotation_train.odgt`` and ``annotation_val.odgt``, one JSON object per line::

    {"ID": "273271,c9db000d5146c15",
     "gtboxes": [{"tag": "person", "fbox": [x, y, w, h], "vbox": [...], "hbox": [...],
                  "extra": {"box_id": 0, "occ": 0, "ignore": 0},
                  "head_attr": {"ignore": 0, "occ": 0, "unsure": 0}},
                 {"tag": "mask", "fbox": [...], "extra": {"ignore": 1}}, ...]}

and the images ``Images/<ID>.jpg``. Boxes are ``[x, y, w, h]`` in pixels, 4 finite numbers with non-negative
width and height (anything else is an error naming the file, the line and the box); they may reach outside
the image, as many of the release's do: the official evaluation clips them to the image (CrowdDet's
``clip_all_boader``; :mod:`..metrics`) and so does the training transform (:mod:`..dataset`), so the loader
keeps them as they are and reads no image header to compare.
As in the official evaluation (CrowdDet ``lib/evaluate/APMRToolkits/image.py``), a box is an *ignore region*
when its tag is not ``person`` (``mask``: crowds, reflections, posters) or its ``extra.ignore`` is non-zero;
every other box is a target. Detectors train and are scored on the full-body box (``fbox``); the visible
(``vbox``) and head (``hbox``) boxes are kept for analysis.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.errors import DataFormatError

log = logging.getLogger(__name__)

FOLDER = "CrowdHuman"
IMAGE_DIR = "Images"
SPLITS = ("train", "val")
PERSON = "person"


def annotation_path(root: str | Path, split: str) -> Path:
    """``root/annotation_<split>.odgt``."""
    return Path(root) / f"annotation_{split}.odgt"


@dataclass
class CrowdHumanImage:
    """One annotated image; every box array is ``(N, 4)`` float32 ``x1, y1, x2, y2``.

    Attributes:
        image_id: the record's ``ID``.
        path: ``Images/<ID>.jpg``.
        boxes: full-body boxes of the targets (tag ``person``, not ``extra.ignore``).
        ignore: full boxes of the ignore regions (``mask`` tags and ignored persons).
        visible: visible boxes of the targets (the full box where the record has no ``vbox``).
        heads: head boxes of the targets (the full box where the record has no ``hbox``).
    """

    image_id: str
    path: Path
    boxes: np.ndarray
    ignore: np.ndarray
    visible: np.ndarray
    heads: np.ndarray
    line: int = 0

    @property
    def num_targets(self) -> int:
        return int(len(self.boxes))


@dataclass
class CrowdHumanSplit:
    """A split's images, in file order."""

    images: list[CrowdHumanImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_targets(self) -> int:
        return sum(image.num_targets for image in self.images)

    @property
    def num_ignore(self) -> int:
        return sum(int(len(image.ignore)) for image in self.images)


def _xywh(path: Path, where: str, value: Any) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise DataFormatError(path, f"{where} must be 4 finite numbers [x, y, w, h], got {value!r}")
    if value[2] < 0 or value[3] < 0:
        raise DataFormatError(path, f"{where} has a negative width or height, got {value!r}")
    return [float(v) for v in value]


def _to_xyxy(rows: list[list[float]]) -> np.ndarray:
    boxes = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def parse_record(path: Path, number: int, text: str, image_dir: Path) -> CrowdHumanImage:
    """One ``.odgt`` line (1-based ``number``) as a :class:`CrowdHumanImage`.

    Raises:
        DataFormatError: naming ``path`` and the line: not JSON, no ``ID``, no ``gtboxes`` list, a box without
            ``tag`` or with a malformed ``fbox``/``vbox``/``hbox`` (not 4 finite numbers, or a negative size).
    """
    where = f"line {number}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise DataFormatError(path, f"{where}: expected a JSON object, got {type(record).__name__}")
    image_id = record.get("ID")
    if not isinstance(image_id, str) or not image_id or "/" in image_id or image_id.startswith("."):
        raise DataFormatError(path, f"{where}: 'ID' must be a non-empty file-name string, got {image_id!r}")
    gtboxes = record.get("gtboxes")
    if not isinstance(gtboxes, list):
        raise DataFormatError(path, f"{where}: 'gtboxes' must be a list (ID {image_id})")
    full, ignore, visible, heads = [], [], [], []
    for i, box in enumerate(gtboxes):
        at = f"{where}: gtboxes[{i}]"
        if not isinstance(box, dict):
            raise DataFormatError(path, f"{at} is not an object")
        if not isinstance(box.get("tag"), str):
            raise DataFormatError(path, f"{at} has no 'tag'")
        if "fbox" not in box:
            raise DataFormatError(path, f"{at} has no 'fbox'")
        fbox = _xywh(path, f"{at}.fbox", box["fbox"])
        vbox = _xywh(path, f"{at}.vbox", box["vbox"]) if "vbox" in box else fbox
        hbox = _xywh(path, f"{at}.hbox", box["hbox"]) if "hbox" in box else fbox
        extra = box.get("extra") or {}
        if not isinstance(extra, dict):
            raise DataFormatError(path, f"{at}.extra is not an object")
        if box["tag"] != PERSON or extra.get("ignore", 0):
            ignore.append(fbox)
        else:
            full.append(fbox)
            visible.append(vbox)
            heads.append(hbox)
    return CrowdHumanImage(
        image_id=image_id,
        path=image_dir / f"{image_id}.jpg",
        boxes=_to_xyxy(full),
        ignore=_to_xyxy(ignore),
        visible=_to_xyxy(visible),
        heads=_to_xyxy(heads),
        line=number,
    )


def load_split(root: str | Path, split: str, *, check_images: bool = True) -> CrowdHumanSplit:
    """Read ``annotation_<split>.odgt`` under ``root``.

    Args:
        root: the ``CrowdHuman`` folder.
        split: ``"train"`` or ``"val"``.
        check_images: require ``Images/<ID>.jpg`` to exist for every record.

    Raises:
        DataFormatError: a missing file, a malformed line (named by number), a duplicate ID or a missing
            image.
    """
    root = Path(root)
    path = annotation_path(root, split)
    if not path.is_file():
        raise DataFormatError(path, "annotation file does not exist")
    image_dir = root / IMAGE_DIR
    out = CrowdHumanSplit()
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            image = parse_record(path, number, text, image_dir)
            if image.image_id in seen:
                raise DataFormatError(
                    path, f"line {number}: ID {image.image_id} already on line {seen[image.image_id]}"
                )
            seen[image.image_id] = number
            if check_images and not image.path.is_file():
                raise DataFormatError(path, f"line {number}: image {image.path} does not exist")
            out.images.append(image)
    if not out.images:
        raise DataFormatError(path, "no records")
    return out


def check(root: str | Path) -> dict[str, int]:
    """Validate a CrowdHuman folder and count images and boxes per split.

    Raises:
        DataFormatError: the first problem found (file and line named).
    """
    counts: dict[str, int] = {}
    for split in SPLITS:
        data = load_split(root, split)
        counts[split] = len(data)
        counts[f"{split}_persons"] = data.num_targets
        counts[f"{split}_ignore"] = data.num_ignore
    return counts

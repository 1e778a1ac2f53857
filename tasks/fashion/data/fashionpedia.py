"""Fashionpedia: its real on-disk layout and a validating loader (constants: :mod:`.fashionpedia_meta`).

Layout (``Fashionpedia/``), as the release unpacks (``train2020.zip``, ``val_test2020.zip`` and the two
annotation files)::

    instances_attributes_train2020.json   # COCO instances + attributes, train split (45,623 images)
    instances_attributes_val2020.json     # the same, validation split (1,158 images)
    train/<hash>.jpg                      # train images
    test/<hash>.jpg                       # validation (and unlabelled test) images

Each json is a COCO instances file with one extra top-level list, ``attributes`` (``id``, ``name``,
``supercategory``, ...; 294 entries with ids in 0-340), and one extra key per annotation,
``attribute_ids`` (a list of attribute ids, possibly empty). ``segmentation`` is a COCO polygon list
(``[[x1, y1, x2, y2, ...], ...]``) or an RLE dict ``{"size": [h, w], "counts": ...}`` whose counts are a
compressed string or an uncompressed list of run lengths (the release holds both kinds). The 46 categories
have ids 0-45: 27 main apparel categories (ids 0-26) and 19 apparel parts (27-45).

The loader checks everything the training and evaluation code relies on and fails with one line naming the
file and the record (``annotations[12] (id 40): ...``). The folder check is :mod:`.fashionpedia_check`, the
synthetic writer :mod:`.synth`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saip_bench.data_check import check_image_headers
from saip_bench.dataset_spec import dataset_folder
from saip_bench.errors import DataFormatError, SaipError
from saip_bench.tasks.fashion.data.fashionpedia_meta import CATEGORIES, FOLDER, NUM_APPAREL, SPLITS

log = logging.getLogger(__name__)

__all__ = ["CATEGORIES", "FOLDER", "NUM_APPAREL", "SPLITS", "FashionImage", "FashionSplit", "load_split"]


@dataclass
class FashionImage:
    """One image of a split and its annotations (dicts as in the json, validated)."""

    id: int
    path: Path
    width: int
    height: int
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FashionSplit:
    """A loaded split: images with annotations, the category and attribute lists, and the raw json
    (COCO's ground truth for :mod:`pycocotools`)."""

    json_path: Path
    images: list[FashionImage]
    categories: list[dict[str, Any]]
    attributes: list[dict[str, Any]]
    raw: dict[str, Any]

    @property
    def num_annotations(self) -> int:
        return sum(len(image.annotations) for image in self.images)


def resolve_root(root: str | Path) -> Path:
    """The folder holding the annotation files: ``root`` itself or ``root/Fashionpedia``."""
    return dataset_folder(root, FOLDER, SPLITS["train"][0])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _segmentation_problem(seg: Any, height: int, width: int) -> str | None:
    """Why ``seg`` is not a well-formed COCO polygon list or RLE for an ``height`` x ``width`` image."""
    if isinstance(seg, list):
        if not seg:
            return "segmentation is an empty polygon list"
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or not all(_is_num(v) for v in poly):
                return f"segmentation[{k}] is not a list of numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"segmentation[{k}] has {len(poly)} numbers (a polygon needs an even count >= 6)"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            return "RLE segmentation needs 'size': [height, width]"
        if list(size) != [height, width]:
            return f"RLE size {size} differs from the image's [{height}, {width}]"
        if isinstance(counts, str):
            return None if counts else "RLE segmentation has empty 'counts'"
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                return "uncompressed RLE 'counts' must be non-negative integers"
            if sum(counts) != height * width:
                return f"uncompressed RLE counts sum to {sum(counts)}, not height x width = {height * width}"
            return None
        return "RLE segmentation needs 'counts' (a string or a list of run lengths)"
    return f"segmentation must be a polygon list or an RLE dict, not {type(seg).__name__}"


def _records(data: dict[str, Any], key: str, path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    records = data.get(key)
    if not isinstance(records, list):
        raise DataFormatError(path, f"no '{key}' list (a Fashionpedia file needs {key})")
    ids: set[int] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataFormatError(path, f"{key}[{i}] is not an object")
        for name in required:
            if name not in rec:
                raise DataFormatError(path, f"{key}[{i}] (id {rec.get('id')}) has no '{name}'")
        if not _is_int(rec["id"]):
            raise DataFormatError(path, f"{key}[{i}] has a non-integer id {rec['id']!r}")
        if rec["id"] in ids:
            raise DataFormatError(path, f"{key}[{i}] (id {rec['id']}) repeats an id")
        ids.add(rec["id"])
    return records


def validate(data: Any, path: Path) -> None:
    """Check a parsed Fashionpedia json; a :class:`DataFormatError` names ``path`` and the first bad record.

    Checks: ``images``, ``annotations``, ``categories`` and ``attributes`` lists with unique integer ids;
    images with ``file_name`` and positive ``width``/``height``; every annotation's ``image_id`` and
    ``category_id`` exist, ``bbox`` is 4 finite numbers with non-negative size, ``segmentation`` is a
    well-formed polygon list or RLE of the image's size, and every ``attribute_ids`` entry is a known id.
    A box reaching outside its image is not an error but counted in one warning: the official evaluation
    (pycocotools' COCOeval) scores boxes as annotated, and mmdet's COCO loader keeps them for training (it
    drops only boxes with no overlap with the image or under 1 pixel wide or high).
    """
    if not isinstance(data, dict):
        raise DataFormatError(path, "top level is not a JSON object")
    images = _records(data, "images", path, ("id", "file_name", "width", "height"))
    categories = _records(data, "categories", path, ("id", "name"))
    attributes = _records(data, "attributes", path, ("id", "name"))
    annotations = _records(
        data, "annotations", path, ("id", "image_id", "category_id", "bbox", "segmentation")
    )
    sizes = {}
    for i, img in enumerate(images):
        if not (_is_int(img["width"]) and _is_int(img["height"]) and img["width"] > 0 and img["height"] > 0):
            raise DataFormatError(
                path, f"images[{i}] (id {img['id']}) needs positive integer width and height"
            )
        if not isinstance(img["file_name"], str) or not img["file_name"]:
            raise DataFormatError(path, f"images[{i}] (id {img['id']}) has no file name")
        sizes[img["id"]] = (img["height"], img["width"])
    category_ids = {c["id"] for c in categories}
    attribute_ids = {a["id"] for a in attributes}
    outside = 0
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}] (id {ann['id']})"
        if ann["image_id"] not in sizes:
            raise DataFormatError(path, f"{where}: image_id {ann['image_id']!r} is not in images")
        if ann["category_id"] not in category_ids:
            raise DataFormatError(path, f"{where}: category_id {ann['category_id']!r} is not in categories")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
            raise DataFormatError(path, f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataFormatError(path, f"{where}: bbox has a negative width or height {bbox}")
        height, width = sizes[ann["image_id"]]
        outside += bool(bbox[0] < 0 or bbox[1] < 0 or bbox[0] + bbox[2] > width or bbox[1] + bbox[3] > height)
        problem = _segmentation_problem(ann["segmentation"], *sizes[ann["image_id"]])
        if problem is not None:
            raise DataFormatError(path, f"{where}: {problem}")
        attrs = ann.get("attribute_ids", [])
        if not isinstance(attrs, list) or not all(_is_int(a) for a in attrs):
            raise DataFormatError(path, f"{where}: attribute_ids must be a list of integers")
        unknown = sorted(set(attrs) - attribute_ids)
        if unknown:
            raise DataFormatError(path, f"{where}: attribute_ids {unknown} are not in attributes")
    if outside:
        log.warning("%s: %d boxes reach outside their image; kept as annotated", path.name, outside)


def load_split(root: str | Path, split: str) -> FashionSplit:
    """Load and validate one split (``"train"`` or ``"val"``) of a Fashionpedia folder.

    Args:
        root: the ``Fashionpedia`` folder (or its parent).
        split: ``"train"`` or ``"val"``.

    Raises:
        DataFormatError: a missing file or folder, unreadable json, a malformed record, or a listed image
            missing or without a readable header (headers only: a run stops before its first step).
    """
    if split not in SPLITS:
        raise SaipError(f"Fashionpedia has splits {', '.join(SPLITS)}, not {split!r}")
    root = resolve_root(root)
    json_name, image_dir = SPLITS[split]
    path = root / json_name
    if not path.is_file():
        raise DataFormatError(path, f"missing annotation file (Fashionpedia needs {json_name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"not valid JSON ({err})") from None
    validate(data, path)
    folder = root / image_dir
    if not folder.is_dir():
        raise DataFormatError(folder, f"missing image folder ({split} images live in {image_dir}/)")
    images = {
        img["id"]: FashionImage(img["id"], folder / img["file_name"], img["width"], img["height"])
        for img in data["images"]
    }
    missing = [image.path for image in images.values() if not image.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataFormatError(missing[0], f"image listed in {path.name} is missing{more}")
    check_image_headers((image.path for image in images.values()), listed_in=path)
    for ann in data["annotations"]:
        images[ann["image_id"]].annotations.append(ann)
    return FashionSplit(path, list(images.values()), data["categories"], data["attributes"], data)

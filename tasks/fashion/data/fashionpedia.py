"""Fashionpedia: its real on-disk layout, a validating loader, a format check, and a synthetic writer.

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
file and the record (``annotations[12] (id 40): ...``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from saip_bench.errors import DataFormatError, SaipError
from saip_bench.io import atomic_path

log = logging.getLogger(__name__)

FOLDER = "Fashionpedia"
#: split -> (annotation file, image folder). The release puts validation images in ``test/``.
SPLITS: dict[str, tuple[str, str]] = {
    "train": ("instances_attributes_train2020.json", "train"),
    "val": ("instances_attributes_val2020.json", "test"),
}

_SUPERS = (
    ("upperbody", 6),
    ("lowerbody", 3),
    ("wholebody", 4),
    ("head", 3),
    ("neck", 1),
    ("arms and hands", 2),
    ("waist", 1),
    ("legs and feet", 4),
    ("others", 3),
    ("garment parts", 7),
    ("closures", 2),
    ("decorations", 10),
)
_NAMES = (
    "shirt, blouse", "top, t-shirt, sweatshirt", "sweater", "cardigan", "jacket", "vest", "pants", "shorts",
    "skirt", "coat", "dress", "jumpsuit", "cape", "glasses", "hat", "headband, head covering, hair accessory",
    "tie", "glove", "watch", "belt", "leg warmer", "tights, stockings", "sock", "shoe", "bag, wallet",
    "scarf",
    "umbrella", "hood", "collar", "lapel", "epaulette", "sleeve", "pocket", "neckline", "buckle", "zipper",
    "applique", "bead", "bow", "flower", "fringe", "ribbon", "rivet", "ruffle", "sequin", "tassel",
)  # fmt: skip
#: The 46 categories as the release's json lists them: ids 0-45 in this order.
CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {"id": i, "name": name, "supercategory": sup}
    for i, (name, sup) in enumerate(zip(_NAMES, [s for s, n in _SUPERS for _ in range(n)], strict=True))
)
NUM_APPAREL = 27  # ids 0-26 are whole garments, 27-45 garment parts, closures and decorations

#: A representative subset of the 294 attributes, with the release's ids, that the synthetic writer uses.
ATTRIBUTES: tuple[dict[str, Any], ...] = tuple(
    {"id": i, "name": name, "supercategory": sup}
    for i, name, sup in (
        (0, "classic (t-shirt)", "nickname"),
        (36, "jeans", "nickname"),
        (157, "short (length)", "length"),
        (160, "wrist-length", "length"),
        (183, "v-neck", "neckline type"),
        (317, "plain (pattern)", "textile pattern"),
        (322, "check", "textile pattern"),
        (328, "stripe", "textile pattern"),
    )
)
_ATTR = {a["name"]: a["id"] for a in ATTRIBUTES}

# LIP part id -> Fashionpedia category id, for the parts that are garments (see saip_bench.synth.LIP_CLASSES).
_LIP_TO_CATEGORY = {1: 14, 3: 17, 4: 13, 6: 10, 7: 9, 8: 22, 10: 11, 11: 25, 12: 8}
_UPPER_TO_CATEGORY = {"tshirt": 1, "shirt": 0, "vneck": 0, "sweater": 2, "jacket": 4, "suit": 4, "dress": 1}
_MIN_AREA = 12  # pixels: smaller garment pieces are not annotated


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
    root = Path(root)
    if not (root / SPLITS["train"][0]).is_file() and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


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
        problem = _segmentation_problem(ann["segmentation"], *sizes[ann["image_id"]])
        if problem is not None:
            raise DataFormatError(path, f"{where}: {problem}")
        attrs = ann.get("attribute_ids", [])
        if not isinstance(attrs, list) or not all(_is_int(a) for a in attrs):
            raise DataFormatError(path, f"{where}: attribute_ids must be a list of integers")
        unknown = sorted(set(attrs) - attribute_ids)
        if unknown:
            raise DataFormatError(path, f"{where}: attribute_ids {unknown} are not in attributes")


def load_split(root: str | Path, split: str) -> FashionSplit:
    """Load and validate one split (``"train"`` or ``"val"``) of a Fashionpedia folder.

    Args:
        root: the ``Fashionpedia`` folder (or its parent).
        split: ``"train"`` or ``"val"``.

    Raises:
        DataFormatError: a missing file or folder, unreadable json, or a malformed record.
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
    for ann in data["annotations"]:
        images[ann["image_id"]].annotations.append(ann)
    return FashionSplit(path, list(images.values()), data["categories"], data["attributes"], data)


def check(root: str | Path) -> dict[str, int]:
    """Validate both splits and that every image file exists; return counts.

    Returns:
        ``train_images``, ``val_images``, ``annotations`` (both splits), ``categories`` and ``attributes``
        (of the train file).
    """
    counts: dict[str, int] = {"annotations": 0}
    for split in SPLITS:
        data = load_split(root, split)
        missing = [image.path for image in data.images if not image.path.is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataFormatError(missing[0], f"image listed in {data.json_path.name} is missing{more}")
        counts[f"{split}_images"] = len(data.images)
        counts["annotations"] += data.num_annotations
        if split == "train":
            counts["categories"] = len(data.categories)
            counts["attributes"] = len(data.attributes)
    return counts


# ----------------------------------------------------------------------------------------------------------
# Synthetic writer


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a binary mask as COCO polygons (pixel-corner coordinates)."""
    import contourpy

    padded = np.pad(mask.astype(np.float64), 1)
    lines = contourpy.contour_generator(z=padded).lines(0.5)
    polys = []
    for line in lines:
        if len(line) < 3:
            continue
        xy = (line - 1.0 + 0.5).round(2)  # grid index -> pixel-centre coordinate in the unpadded image
        polys.append([float(v) for v in xy.reshape(-1)])
    return polys


def _encode(mask: np.ndarray, style: str) -> tuple[Any, float]:
    """``mask`` as a segmentation of ``style`` (``polygon``, ``rle``, ``rle_list``) and its area."""
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    if style == "polygon":
        polys = _polygons(mask)
        if polys:
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
            decoded = mask_utils.decode(rle).astype(bool)
            iou = (decoded & mask).sum() / max(1, (decoded | mask).sum())
            if iou >= 0.8:  # holes or slivers the outline misses: fall back to RLE
                return polys, float(mask_utils.area(rle))
    if style == "rle_list":
        flat = mask.T.reshape(-1).astype(np.uint8)  # COCO RLE runs are column-major, starting with zeros
        change = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        counts = np.diff(bounds).tolist()
        if flat[0]:
            counts = [0, *counts]
        return {"size": [h, w], "counts": [int(c) for c in counts]}, float(mask.sum())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}, float(mask.sum())


def _garments(part_mask: np.ndarray, app: dict[str, Any]) -> list[tuple[int, np.ndarray, list[int]]]:
    """(category id, mask, attribute ids) for each garment piece of one rendered person."""
    upper, lower = app["upper"], app["lower"]
    upper_attrs = [_ATTR["short (length)"] if upper.get("sleeve") == "short" else _ATTR["wrist-length"]]
    upper_attrs.append(
        {"stripes": _ATTR["stripe"], "plaid": _ATTR["check"]}.get(upper["pattern"], _ATTR["plain (pattern)"])
    )
    if upper["type"] == "tshirt":
        upper_attrs.append(_ATTR["classic (t-shirt)"])
    if upper["type"] == "vneck":
        upper_attrs.append(_ATTR["v-neck"])
    lower_attrs = [{"stripe": _ATTR["stripe"]}.get(lower["pattern"], _ATTR["plain (pattern)"])]
    if lower["type"] == "jeans":
        lower_attrs.append(_ATTR["jeans"])
    out = []
    for lip in np.unique(part_mask):
        lip = int(lip)
        mask = part_mask == lip
        if lip == 5:
            out.append((_UPPER_TO_CATEGORY.get(upper["type"], 1), mask, upper_attrs))
        elif lip == 9:
            out.append((7 if lower["type"] == "shorts" else 6, mask, lower_attrs))
        elif lip in (18, 19):  # left and right shoe: one instance each, as Fashionpedia annotates them
            out.append((23, mask, []))
        elif lip in _LIP_TO_CATEGORY:
            attrs = [_ATTR["short (length)"]] if lip == 6 else []
            out.append((_LIP_TO_CATEGORY[lip], mask, attrs))
    return [(c, m, a) for c, m, a in out if m.sum() >= _MIN_AREA]


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic Fashionpedia into the folder ``out`` (both json files, ``train/`` and ``test/``).

    Rules: ``images`` person photos of ``ids`` identities (a fashion photo is one person, framed tall), about
    a fifth of them (at least one) in the validation split. Every garment of the person's LIP part mask
    becomes one instance: upper clothes -> shirt/top/sweater/jacket by the identity's garment type, pants ->
    pants or shorts, and dress, coat, skirt, jumpsuit, hat, glove, sunglasses -> glasses, socks, each shoe,
    scarf. Segmentations cycle through polygon, compressed RLE and uncompressed RLE, so every loader path is
    exercised. Attributes come from the identity (sleeve length, pattern, jeans, t-shirt, v-neck).

    Args:
        out: Target folder; it may exist only if empty. Written atomically (all or nothing).
        ids: Number of identities (at least 1).
        images: Total number of images (at least 2: one train, one validation).
        seed: Same seed, same files.
    """
    from saip_bench.synth import SynthWorld

    out = Path(out)
    if ids < 1:
        raise SaipError(f"fashionpedia needs at least 1 identity, got {ids}")
    if images < 2:
        raise SaipError(f"fashionpedia needs at least 2 images (one train, one validation), got {images}")
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write fashionpedia over it")
    rng = np.random.default_rng([seed % 2**63, 4620])
    world = SynthWorld(seed)
    n_val = max(1, images // 5)
    styles = ("polygon", "rle", "polygon", "rle_list")
    files = {
        split: {
            "images": [],
            "annotations": [],
            "categories": list(CATEGORIES),
            "attributes": list(ATTRIBUTES),
        }
        for split in SPLITS
    }
    ann_id = 0
    with atomic_path(out) as tmp:
        for _, image_dir in SPLITS.values():
            (tmp / image_dir).mkdir(parents=True)
        for index in range(images):
            split = "val" if index < n_val else "train"
            identity = world.identity(int(rng.integers(ids)) + 1)
            height = int(rng.integers(28, 41)) * 8
            width = int(round(height * float(rng.uniform(0.66, 0.8))))
            sample = world.render_person(identity, int(rng.integers(1, 7)), size=(height, width), rng=rng)
            name = hashlib.md5(f"{seed}-{index}".encode()).hexdigest() + ".jpg"
            (tmp / SPLITS[split][1] / name).write_bytes(_jpeg(sample.image))
            image_id = index + 1
            files[split]["images"].append(
                {"id": image_id, "file_name": name, "width": width, "height": height, "license": 1}
            )
            for category, mask, attrs in _garments(sample.part_mask, identity.appearance):
                ann_id += 1
                seg, area = _encode(mask, styles[ann_id % len(styles)])
                ys, xs = np.nonzero(mask)
                x0, y0 = float(xs.min()), float(ys.min())
                files[split]["annotations"].append(
                    {
                        "id": ann_id, "image_id": image_id, "category_id": category, "segmentation": seg,
                        "area": area, "iscrowd": 0, "attribute_ids": sorted(attrs),
                        "bbox": [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
                    }
                )  # fmt: skip
        for split, (json_name, _) in SPLITS.items():
            data = {
                "info": {"description": "synthetic Fashionpedia (saip-bench)", "year": 2020},
                **files[split],
            }
            (tmp / json_name).write_text(json.dumps(data), encoding="utf-8")
    log.info("fashionpedia: wrote %d images (%d validation), %d instances to %s", images, n_val, ann_id, out)


#: The dataset registry's entry point (``DATASETS.get(name).load(root, ...)``).
load = load_split

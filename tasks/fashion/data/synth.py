"""Synthetic Fashionpedia: tall person photos whose garments become instances, in the real COCO layout.

Writer only: the reader (:mod:`.fashionpedia`) imports nothing from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.dataset_spec import SynthOptions
from saip_bench.errors import SaipError
from saip_bench.io import atomic_path
from saip_bench.synth.files import jpeg_bytes, require_empty
from saip_bench.tasks.fashion.data.fashionpedia_meta import CATEGORIES, SPLITS

log = logging.getLogger(__name__)

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


def write_fashionpedia(out: Path, options: SynthOptions) -> None:
    """Write a synthetic Fashionpedia into the folder ``out`` (both json files, ``train/`` and ``test/``).

    Rules: ``images`` person photos of ``ids`` identities (a fashion photo is one person, framed tall), about
    a fifth of them (at least one) in the validation split. Every garment of the person's LIP part mask
    becomes one instance: upper clothes -> shirt/top/sweater/jacket by the identity's garment type, pants ->
    pants or shorts, and dress, coat, skirt, jumpsuit, hat, glove, sunglasses -> glasses, socks, each shoe,
    scarf. Segmentations cycle through polygon, compressed RLE and uncompressed RLE, so every loader path is
    exercised. Attributes come from the identity (sleeve length, pattern, jeans, t-shirt, v-neck).

    ``out`` may exist only if empty; it is written atomically (all or nothing). Needs at least 1 identity
    and 2 images (one train, one validation); the same seed writes the same files.
    """
    from saip_bench.synth import SynthWorld

    ids, images, seed = options.ids, options.images, options.seed
    if ids < 1:
        raise SaipError(f"fashionpedia needs at least 1 identity, got {ids}")
    if images < 2:
        raise SaipError(f"fashionpedia needs at least 2 images (one train, one validation), got {images}")
    require_empty(out, "fashionpedia")
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
            (tmp / SPLITS[split][1] / name).write_bytes(jpeg_bytes(sample.image))
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

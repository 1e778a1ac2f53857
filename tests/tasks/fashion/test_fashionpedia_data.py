"""Fashionpedia's loader, check and synthetic writer: the real format, and one clear error per bad record."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError, SaipError
from saip_bench.tasks.fashion.data import CATEGORIES, load_split, validate
from saip_bench.tasks.fashion.dataset import decode_segmentation

TRAIN_JSON = "instances_attributes_train2020.json"


def _train(root: Path) -> dict[str, Any]:
    return json.loads((root / TRAIN_JSON).read_text())


def test_categories_are_the_releases_46() -> None:
    assert [c["id"] for c in CATEGORIES] == list(range(46))
    assert CATEGORIES[0]["name"] == "shirt, blouse" and CATEGORIES[45]["name"] == "tassel"
    assert CATEGORIES[23] == {"id": 23, "name": "shoe", "supercategory": "legs and feet"}
    assert sum(c["supercategory"] in ("garment parts", "closures", "decorations") for c in CATEGORIES) == 19


def test_write_synth_writes_the_real_layout(fashion_root: Path) -> None:
    counts = DATASETS.get("fashionpedia").check(fashion_root)
    assert counts["train_images"] + counts["val_images"] == 12 and counts["val_images"] == 2
    assert counts["categories"] == 46 and counts["annotations"] > 12
    train = _train(fashion_root)
    assert set(train) >= {"images", "annotations", "categories", "attributes"}
    assert all((fashion_root / "train" / im["file_name"]).is_file() for im in train["images"])
    val = json.loads((fashion_root / "instances_attributes_val2020.json").read_text())
    assert all((fashion_root / "test" / im["file_name"]).is_file() for im in val["images"])
    anns = train["annotations"] + val["annotations"]
    kinds = {
        "polygon" if isinstance(a["segmentation"], list) else type(a["segmentation"]["counts"]).__name__
        for a in anns
    }
    assert kinds == {"polygon", "str", "list"}  # polygon, compressed RLE, uncompressed RLE
    assert any(a["attribute_ids"] for a in anns)
    sizes = {im["id"]: (im["height"], im["width"]) for im in train["images"]}
    for ann in train["annotations"][:20]:  # every encoding decodes to a mask inside its box
        mask = decode_segmentation(ann["segmentation"], *sizes[ann["image_id"]])
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert mask.sum() > 0 and xs.min() >= x - 1 and xs.max() <= x + w and ys.max() <= y + h


def test_write_synth_is_deterministic_and_refuses_a_full_folder(fashion_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "Fashionpedia"
    DATASETS.get("fashionpedia").write_synth(out, ids=4, images=12, seed=3)
    assert _train(out) == _train(fashion_root)
    with pytest.raises(SaipError, match="not empty"):
        DATASETS.get("fashionpedia").write_synth(out, ids=4, images=12, seed=3)
    with pytest.raises(SaipError, match="at least 2 images"):
        DATASETS.get("fashionpedia").write_synth(tmp_path / "other", ids=1, images=1, seed=0)


def test_load_split_groups_annotations_by_image(fashion_root: Path) -> None:
    split = load_split(fashion_root.parent, "val")  # the parent folder is accepted too
    assert split.json_path.name == "instances_attributes_val2020.json"
    assert all(im.path.parent.name == "test" for im in split.images)
    assert split.num_annotations == len(split.raw["annotations"])
    assert all(a["image_id"] == im.id for im in split.images for a in im.annotations)


def _broken(data: dict[str, Any], change: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    ann = data["annotations"][2]
    if change == "category":
        ann["category_id"] = 99
    elif change == "image":
        ann["image_id"] = 10_000
    elif change == "bbox":
        ann["bbox"] = [1, 2, 3]
    elif change == "polygon":
        ann["segmentation"] = [[1.0, 2.0, 3.0, 4.0, 5.0]]
    elif change == "rle_size":
        ann["segmentation"] = {"size": [1, 1], "counts": [1]}
    elif change == "rle_sum":
        image = next(im for im in data["images"] if im["id"] == ann["image_id"])
        ann["segmentation"] = {"size": [image["height"], image["width"]], "counts": [5, 3]}
    elif change == "attribute":
        ann["attribute_ids"] = [157, 999]
    elif change == "missing_key":
        del ann["segmentation"]
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("category", r"annotations\[2\] \(id \d+\): category_id 99 is not in categories"),
        ("image", r"annotations\[2\] \(id \d+\): image_id 10000 is not in images"),
        ("bbox", r"annotations\[2\] \(id \d+\): bbox must be 4 numbers"),
        ("polygon", r"annotations\[2\] \(id \d+\): segmentation\[0\] has 5 numbers"),
        ("rle_size", r"annotations\[2\] \(id \d+\): RLE size \[1, 1\] differs"),
        ("rle_sum", r"annotations\[2\] \(id \d+\): uncompressed RLE counts sum to 8"),
        ("attribute", r"annotations\[2\] \(id \d+\): attribute_ids \[999\] are not in attributes"),
        ("missing_key", r"annotations\[2\] \(id \d+\) has no 'segmentation'"),
    ],
)
def test_validate_names_the_bad_record(fashion_root: Path, change: str, message: str) -> None:
    path = fashion_root / TRAIN_JSON
    with pytest.raises(DataFormatError, match=message) as info:
        validate(_broken(_train(fashion_root), change), path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_check_reports_malformed_files(fashion_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "Fashionpedia"
    shutil.copytree(fashion_root, root)
    (root / TRAIN_JSON).write_text('{"images": [')
    with pytest.raises(DataFormatError, match=f"{TRAIN_JSON}.*not valid JSON"):
        DATASETS.get("fashionpedia").check(root)
    data = _train(fashion_root)
    del data["attributes"]
    (root / TRAIN_JSON).write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match="no 'attributes' list"):
        DATASETS.get("fashionpedia").check(root)
    (root / TRAIN_JSON).write_text(json.dumps(_train(fashion_root)))
    first = _train(fashion_root)["images"][0]["file_name"]
    (root / "train" / first).unlink()
    with pytest.raises(DataFormatError, match="image listed in .* is missing"):
        DATASETS.get("fashionpedia").check(root)
    shutil.copy(fashion_root / "train" / first, root / "train" / first)
    shutil.rmtree(root / "test")
    with pytest.raises(DataFormatError, match="missing image folder"):
        DATASETS.get("fashionpedia").check(root)
    (root / TRAIN_JSON).unlink()
    with pytest.raises(DataFormatError, match="missing annotation file"):
        DATASETS.get("fashionpedia").check(root)

"""COCO-Keypoints / COCO-WholeBody formats: the synthetic writers, the loaders, the checks, their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from saip_bench.data_check import check_dataset
from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.tasks.pose.data.coco_format import load_detections


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_synthetic_coco_keypoints_is_the_real_layout(keypoints_master: Path) -> None:
    counts = DATASETS.get("coco_keypoints").check(keypoints_master)
    assert counts["train_images"] == 8 and counts["val_images"] == 2
    assert counts["train_persons"] >= 4
    data = json.loads((keypoints_master / "annotations/person_keypoints_val2017.json").read_text())
    image = data["images"][0]
    assert (keypoints_master / "val2017" / image["file_name"]).is_file()
    assert len(image["file_name"]) == len("000000000001.jpg")
    ann = data["annotations"][0]
    assert len(ann["keypoints"]) == 51 and ann["iscrowd"] == 0 and ann["area"] > 0
    points = np.asarray(ann["keypoints"]).reshape(17, 3)
    assert ann["num_keypoints"] == int((points[:, 2] > 0).sum()) and set(points[:, 2]) <= {0, 1, 2}
    x, y, w, h = ann["bbox"]
    labelled = points[points[:, 2] > 0]
    assert (labelled[:, 0] >= x - 2).all() and (labelled[:, 0] <= x + w + 2).all()  # keypoints in the box
    assert (labelled[:, 1] >= y - 2).all() and (labelled[:, 1] <= y + h + 2).all()
    assert data["categories"][0]["keypoints"][0] == "nose"


def test_synthetic_wholebody_has_every_part(wholebody_master: Path) -> None:
    split = DATASETS.get("coco_wholebody").load(wholebody_master, "train")
    assert split.instances and all(inst.keypoints.shape == (133, 3) for inst in split.instances)
    ann = split.coco["annotations"][0]
    for key, count in (("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21)):
        assert len(ann[key]) == 3 * count
    for part in ("face", "lefthand", "righthand"):
        assert len(ann[f"{part}_box"]) == 4 and isinstance(ann[f"{part}_valid"], bool)
    assert DATASETS.get("coco_wholebody").check(wholebody_master)["val_images"] == 2


def test_same_seed_same_files(keypoints_master: Path, tmp_path: Path) -> None:
    DATASETS.get("coco_keypoints").write_synth(tmp_path / "again", ids=1, images=10, seed=1)
    name = "annotations/person_keypoints_train2017.json"
    assert (tmp_path / "again" / name).read_text() == (keypoints_master / name).read_text()


def test_missing_keypoints_field_is_one_clear_error(keypoints_dir: Path) -> None:
    path = keypoints_dir / "annotations/person_keypoints_train2017.json"
    ann_id = json.loads(path.read_text())["annotations"][1]["id"]
    _edit(path, lambda d: d["annotations"][1].pop("keypoints"))
    with pytest.raises(
        DataFormatError,
        match=rf"person_keypoints_train2017.json: annotations\[1\] \(id {ann_id}\) has no 'keypoints'",
    ):
        DATASETS.get("coco_keypoints").check(keypoints_dir)


def test_annotation_naming_a_missing_image_is_one_clear_error(keypoints_dir: Path) -> None:
    path = keypoints_dir / "annotations/person_keypoints_val2017.json"
    _edit(path, lambda d: d["annotations"][0].update(image_id=999))
    with pytest.raises(
        DataFormatError, match=r"annotations\[0\] \(id \d+\): image_id 999 is not in 'images'"
    ):
        DATASETS.get("coco_keypoints").load(keypoints_dir, "val")


def test_wrong_part_length_and_missing_image_file(wholebody_dir: Path) -> None:
    path = wholebody_dir / "annotations/coco_wholebody_val_v1.0.json"
    original = path.read_text()
    _edit(path, lambda d: d["annotations"][0].update(face_kpts=[0.0] * 30))
    with pytest.raises(DataFormatError, match=r"'face_kpts' has 30 values, expected 204"):
        DATASETS.get("coco_wholebody").check(wholebody_dir)
    path.write_text(original)
    first = json.loads(original)["images"][0]["file_name"]
    (wholebody_dir / "val2017" / first).unlink()
    with pytest.raises(DataFormatError, match=rf"images\[0\] .*{first} does not exist"):
        DATASETS.get("coco_wholebody").check(wholebody_dir)


def test_data_check_reports_found_and_malformed(keypoints_dir: Path) -> None:
    info = DATASETS.get("coco_keypoints")
    status = check_dataset(info, keypoints_dir)
    assert status.status == "found" and status.counts["val_images"] == 2
    (keypoints_dir / "annotations/person_keypoints_val2017.json").write_text("{not json")
    status = check_dataset(info, keypoints_dir)
    assert status.status == "malformed" and "not valid JSON" in status.problem


def test_detection_file_with_score_threshold(keypoints_master: Path, tmp_path: Path) -> None:
    split = DATASETS.get("coco_keypoints").load(keypoints_master, "val")
    image_id = split.coco["images"][0]["id"]
    dets = [{"image_id": image_id, "category_id": 1, "bbox": [10, 10, 50, 120], "score": 0.9},
            {"image_id": image_id, "category_id": 1, "bbox": [20, 10, 50, 120], "score": 0.1}]  # fmt: skip
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    kept = load_detections(path, split, score_thr=0.5)
    assert (
        len(kept) == 1
        and kept[0].bbox_score == pytest.approx(0.9)
        and kept[0].bbox == (10.0, 10.0, 50.0, 120.0)
    )
    path.write_text(json.dumps([{**dets[0], "image_id": 12345}]))
    with pytest.raises(
        DataFormatError, match=r"\[0\]: image_id 12345 is not in person_keypoints_val2017.json"
    ):
        load_detections(path, split, score_thr=0.0)

"""The CrowdHuman odgt loader, format check and synthetic writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from saip_bench.data_check import check_dataset
from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.tasks.detection.data import crowdhuman


def _lines(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in crowdhuman.annotation_path(root, split).read_text().splitlines()]


def test_synthetic_folder_has_the_real_layout(crowdhuman_master: Path) -> None:
    train, val = _lines(crowdhuman_master, "train"), _lines(crowdhuman_master, "val")
    assert (len(train), len(val)) == (18, 6)
    for record in train + val:
        assert (crowdhuman_master / "Images" / f"{record['ID']}.jpg").is_file()
        for box in record["gtboxes"]:
            assert box["tag"] in ("person", "mask")
            for key in ("fbox", "vbox", "hbox"):
                assert len(box[key]) == 4 and all(isinstance(v, int) for v in box[key])
            assert {"box_id", "ignore"} <= set(box["extra"])
    persons = [b for r in train for b in r["gtboxes"] if b["tag"] == "person"]
    assert len(persons) / len(train) >= 8  # crowded scenes
    assert any(b["tag"] == "mask" for r in train for b in r["gtboxes"])  # ignore regions
    assert any(b["extra"]["occ"] for b in persons)  # occlusion
    visible_inside = [
        b["vbox"][2] * b["vbox"][3] <= b["fbox"][2] * b["fbox"][3] + 1
        for b in persons
        if not b["extra"]["ignore"]
    ]
    assert all(visible_inside)


def test_write_synth_is_deterministic(tmp_path: Path, crowdhuman_master: Path) -> None:
    DATASETS.get("crowdhuman").write_synth(tmp_path / "again", ids=1, images=24, seed=3)
    for split in crowdhuman.SPLITS:
        assert (
            crowdhuman.annotation_path(tmp_path / "again", split).read_text()
            == crowdhuman.annotation_path(crowdhuman_master, split).read_text()
        )


def test_check_counts_and_data_check_dispatch(crowdhuman_master: Path) -> None:
    counts = crowdhuman.check(crowdhuman_master)
    train = crowdhuman.load_split(crowdhuman_master, "train")
    assert counts["train"] == 18 and counts["val"] == 6
    assert counts["train_persons"] == train.num_targets > 0 and counts["train_ignore"] == train.num_ignore > 0
    status = check_dataset(DATASETS.get("crowdhuman"), crowdhuman_master)
    assert status.status == "found" and status.counts == counts and "smaller than official" in status.notes


def test_loader_splits_targets_and_ignore_regions(crowdhuman_master: Path) -> None:
    split = crowdhuman.load_split(crowdhuman_master, "val")
    records = _lines(crowdhuman_master, "val")
    for image, record in zip(split.images, records, strict=True):
        kept = [b for b in record["gtboxes"] if b["tag"] == "person" and not b["extra"]["ignore"]]
        ignored = [b for b in record["gtboxes"] if b not in kept]
        assert (
            image.image_id == record["ID"]
            and len(image.boxes) == len(kept)
            and len(image.ignore) == len(ignored)
        )
        if kept:
            x, y, w, h = kept[0]["fbox"]
            np.testing.assert_allclose(image.boxes[0], [x, y, x + w, y + h])
            x, y, w, h = kept[0]["hbox"]
            np.testing.assert_allclose(image.heads[0], [x, y, x + w, y + h])
        assert image.visible.shape == image.boxes.shape


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"gtboxes": []}', "line 2: 'ID' must be"),
        ('{"ID": "a"}', "line 2: 'gtboxes' must be a list"),
        ('{"ID": "a", "gtboxes": [{"fbox": [1, 2, 3, 4]}]}', "line 2: gtboxes[0] has no 'tag'"),
        ('{"ID": "a", "gtboxes": [{"tag": "person"}]}', "line 2: gtboxes[0] has no 'fbox'"),
        (
            '{"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 2, 3]}]}',
            "line 2: gtboxes[0].fbox must be 4",
        ),
        ('{"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 2, "3", 4]}]}', "gtboxes[0].fbox must be 4"),
        ('{"ID": "a", "gtboxes": [{"tag": "mask", "fbox": [1, 2, 3, 4], "hbox": null}]}', "gtboxes[0].hbox"),
        ('{"ID": "missing", "gtboxes": []}', "line 2: image"),
    ],
)
def test_malformed_lines_name_file_and_line(crowdhuman_dir: Path, line: str, message: str) -> None:
    path = crowdhuman.annotation_path(crowdhuman_dir, "val")
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0], line, *rows[1:]]) + "\n")
    with pytest.raises(DataFormatError) as err:
        crowdhuman.check(crowdhuman_dir)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_duplicate_ids_and_missing_files(crowdhuman_dir: Path) -> None:
    path = crowdhuman.annotation_path(crowdhuman_dir, "val")
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows, rows[0]]) + "\n")
    with pytest.raises(DataFormatError, match=f"line {len(rows) + 1}: ID .* already on line 1"):
        crowdhuman.load_split(crowdhuman_dir, "val")
    crowdhuman.annotation_path(crowdhuman_dir, "train").unlink()
    with pytest.raises(DataFormatError, match="annotation_train.odgt: annotation file does not exist"):
        crowdhuman.check(crowdhuman_dir)

"""LIP and CIHP: synthetic writers, loaders and `check` on well-formed and malformed folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.tasks.parsing.data import cihp, lip, read_label, synth


@pytest.fixture(scope="module")
def lip_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lip") / lip.FOLDER
    DATASETS.get("lip").write_synth(root, ids=4, images=8, seed=0)
    return root


@pytest.fixture(scope="module")
def cihp_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cihp") / cihp.FOLDER
    DATASETS.get("cihp").write_synth(root, ids=4, images=4, seed=0)
    return root


@pytest.fixture
def lip_copy(lip_master: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(lip_master, tmp_path / lip.FOLDER))


def test_lip_synth_checks_and_loads(lip_master: Path) -> None:
    assert lip.check(lip_master) == {"train": 6, "val": 2, "classes": 20}
    data = lip.load(lip_master.parent)  # the parent folder is resolved too
    label = read_label(data.train.labels[0])
    with Image.open(data.train.images[0]) as img:
        assert img.size == (label.shape[1], label.shape[0])
    ids = np.unique(np.concatenate([read_label(p).ravel() for p in data.train.labels]))
    assert {0, 2, 5, 13, 14, 15}.issubset(set(ids.tolist()))  # background, hair, clothes, face, arms
    assert ids.max() < 20


def test_cihp_synth_checks_and_writes_human_ids(cihp_master: Path) -> None:
    assert cihp.check(cihp_master) == {"train": 3, "val": 1, "classes": 20}
    data = cihp.load(cihp_master)
    labels = np.concatenate([read_label(p).ravel() for p in data.train.labels])
    assert (labels == synth.TORSO_SKIN).any() and (labels == 13).any()
    assert len(list((cihp_master / "Training" / "Human_ids").glob("*.png"))) == 3


def test_label_id_above_19_is_one_clear_error(lip_copy: Path) -> None:
    png = sorted((lip_copy / "train_segmentations").glob("*.png"))[0]
    ids = read_label(png)
    ids[0, 0] = 23
    Image.fromarray(ids, mode="L").save(png)
    with pytest.raises(DataFormatError, match=r"label id 23 is outside 0\.\.19") as err:
        lip.check(lip_copy)
    assert str(png) in str(err.value)


def test_id_list_naming_a_missing_image_names_list_and_line(lip_copy: Path) -> None:
    ids = (lip_copy / "val_id.txt").read_text().splitlines()
    (lip_copy / "val_images" / f"{ids[1]}.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"val_id\.txt: line 2: image .* is missing"):
        lip.load(lip_copy)


def test_rgb_label_and_size_mismatch_are_errors(lip_copy: Path) -> None:
    pngs = sorted((lip_copy / "train_segmentations").glob("*.png"))
    Image.fromarray(np.stack([read_label(pngs[0])] * 3, axis=-1)).save(pngs[0])
    with pytest.raises(DataFormatError, match="single-channel"):
        lip.check(lip_copy)
    Image.fromarray(read_label(pngs[1])[:, :-3]).save(pngs[0])
    with pytest.raises(DataFormatError, match="but its image is"):
        lip.check(lip_copy)


def test_cihp_missing_id_list(cihp_master: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(cihp_master, tmp_path / cihp.FOLDER))
    (root / "Validation" / "val_id.txt").unlink()
    with pytest.raises(DataFormatError, match="val_id.txt: missing id list"):
        cihp.check(root)


def test_lip_to_cihp_maps_jumpsuits_and_neck() -> None:
    part = np.zeros((12, 10), np.uint8)
    part[1:6, 2:8] = 13  # head: 6 wide
    part[6:9, 4:6] = 13  # neck: 2 wide
    part[9:11, 2:8] = 10  # a LIP jumpsuit
    out = synth.lip_to_cihp(part, (part > 0).astype(np.int32))
    assert (out[6:9, 4:6] == synth.TORSO_SKIN).all()
    assert (out[1:6, 2:8] == 13).all()
    assert (out[9:11, 2:8] == 5).all()

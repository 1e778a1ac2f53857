"""PETA-zs: the synthetic writer produces the real split-pickle layout and the loader reads it back."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.synth.attributes import PETA_ATTRIBUTES
from saip_bench.tasks.attribute.data import peta_zs


def _read(root: Path) -> dict:
    with open(root / "dataset_zs_run0.pkl", "rb") as handle:
        return pickle.load(handle)


def _write(root: Path, data: object) -> None:
    with open(root / "dataset_zs_run0.pkl", "wb") as handle:
        pickle.dump(data, handle)


def test_attribute_names_match_the_generator() -> None:
    assert peta_zs.ATTRIBUTES == PETA_ATTRIBUTES
    assert len(peta_zs.ATTRIBUTES) == 35


def test_write_synth_then_load(tmp_path: Path, rendered: list) -> None:
    root = tmp_path / "PETA"
    DATASETS.get("peta_zs").write_synth(root, ids=10, images=30, seed=2)
    data = DATASETS.get("peta_zs").load(root)
    assert len(rendered) == 30 and len(data.image_paths) == 30
    assert [p.name for p in data.image_paths] == [f"{i:05d}.png" for i in range(1, 31)]
    expected = np.array([[s.attributes[a] for a in peta_zs.ATTRIBUTES] for s in rendered], dtype=np.uint8)
    np.testing.assert_array_equal(data.labels, expected)
    # PNG is lossless: the files hold exactly what the generator drew.
    np.testing.assert_array_equal(np.asarray(Image.open(data.image_paths[4])), rendered[4].image)
    # Identities 6 / 2 / 2 over train / val / test, disjoint; every image in exactly one of them.
    pid_sets = {s: {rendered[i].pid for i in data.partition[s]} for s in ("train", "val", "test")}
    assert [len(pid_sets[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert not (pid_sets["train"] | pid_sets["val"]) & pid_sets["test"]
    all_index = np.concatenate([data.partition[s] for s in ("train", "val", "test")])
    assert sorted(all_index.tolist()) == list(range(30))
    assert sorted(data.partition["trainval"].tolist()) == sorted(
        np.concatenate([data.partition["train"], data.partition["val"]]).tolist()
    )
    counts = peta_zs.check(root)
    assert counts["images"] == 30 and counts["attributes"] == 35
    assert counts["train"] + counts["val"] + counts["test"] == 30
    raw = _read(root)
    assert set(raw) >= {"image_name", "label", "attr_name", "partition", "weight_trainval"}
    np.testing.assert_allclose(raw["weight_trainval"], expected[raw["partition"]["trainval"]].mean(axis=0))


def test_pkl_without_partition(peta_dir: Path) -> None:
    raw = _read(peta_dir)
    del raw["partition"]
    _write(peta_dir, raw)
    with pytest.raises(DataFormatError, match="dataset_zs_run0.pkl: missing key 'partition'"):
        peta_zs.check(peta_dir)


def test_partition_without_test(peta_dir: Path) -> None:
    raw = _read(peta_dir)
    del raw["partition"]["test"]
    _write(peta_dir, raw)
    with pytest.raises(DataFormatError, match="dataset_zs_run0.pkl: partition has no 'test' split"):
        peta_zs.load(peta_dir)


def test_overlapping_train_and_test(peta_dir: Path) -> None:
    raw = _read(peta_dir)
    raw["partition"]["test"] = np.concatenate([raw["partition"]["test"], raw["partition"]["train"][:1]])
    _write(peta_dir, raw)
    with pytest.raises(DataFormatError, match="in both trainval and test"):
        peta_zs.load(peta_dir)


def test_index_out_of_range_and_bad_labels(peta_dir: Path) -> None:
    raw = _read(peta_dir)
    raw["partition"]["val"] = np.array([0, 999])
    _write(peta_dir, raw)
    with pytest.raises(DataFormatError, match="split 'val' has indices outside"):
        peta_zs.load(peta_dir)
    raw = _read(peta_dir)
    raw["partition"]["val"] = np.array([0])
    raw["label"] = raw["label"][:, :30]
    _write(peta_dir, raw)
    with pytest.raises(DataFormatError, match="label has shape"):
        peta_zs.load(peta_dir)


def test_listed_image_missing_and_corrupt(peta_dir: Path) -> None:
    (peta_dir / "images" / "00005.png").unlink()
    with pytest.raises(
        DataFormatError, match=r"00005\.png: image listed in dataset_zs_run0.pkl does not exist"
    ):
        peta_zs.check(peta_dir)
    (peta_dir / "images" / "00005.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFormatError, match=r"00005\.png: not a readable image"):
        peta_zs.check(peta_dir)


def test_not_a_pickle_and_unsafe_pickle(peta_dir: Path) -> None:
    (peta_dir / "dataset_zs_run0.pkl").write_bytes(b"hello")
    with pytest.raises(DataFormatError, match="dataset_zs_run0.pkl: not a readable split pickle"):
        peta_zs.load(peta_dir)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo should-not-run",))

    _write(peta_dir, {"image_name": Evil()})
    with pytest.raises(DataFormatError, match="may not contain"):
        peta_zs.load(peta_dir)


def test_easydict_pickles_and_multi_run_lists(peta_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The published files pickle an easydict.EasyDict with per-run lists; easydict need not be installed.
    fake = types.ModuleType("easydict")

    class EasyDict(dict):
        def __init__(self, d=None):
            super().__init__()
            for k, v in (d or {}).items():
                self[k] = v
                setattr(self, k, v)

    EasyDict.__module__ = "easydict"
    EasyDict.__qualname__ = "EasyDict"
    fake.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, "easydict", fake)
    raw = _read(peta_dir)
    part = raw["partition"]
    raw["partition"] = EasyDict({k: [v] for k, v in part.items()})
    raw["weight_trainval"] = [raw["weight_trainval"]]
    _write(peta_dir, EasyDict(raw))
    monkeypatch.delitem(sys.modules, "easydict")
    data = peta_zs.load(peta_dir)
    np.testing.assert_array_equal(data.partition["test"], part["test"])
    assert data.attr_names == peta_zs.ATTRIBUTES

"""PA-100K: the synthetic writer produces the real annotation.mat layout and the loader reads it back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.evaluate.images import ImageReadError, eval_transform
from saip_bench.synth.attributes import PA100K_ATTRIBUTES
from saip_bench.tasks.attribute.data import pa100k
from saip_bench.tasks.attribute.images import AttributeImages


def test_attribute_names_match_the_generator() -> None:
    assert pa100k.ATTRIBUTES == PA100K_ATTRIBUTES
    assert len(pa100k.ATTRIBUTES) == 26


def test_write_synth_then_load(tmp_path: Path, rendered: list) -> None:
    DATASETS.get("pa100k").write_synth(tmp_path / "PA-100K", ids=5, images=20, seed=1)
    data = DATASETS.get("pa100k").load(tmp_path / "PA-100K")
    assert {k: len(v) for k, v in data.partition.items()} == {
        "train": 16,
        "val": 2,
        "test": 2,
        "trainval": 18,
    }
    assert data.attr_names == pa100k.ATTRIBUTES
    expected = np.array([[s.attributes[a] for a in pa100k.ATTRIBUTES] for s in rendered], dtype=np.uint8)
    assert len(rendered) == 20
    np.testing.assert_array_equal(data.labels, expected)
    assert [p.name for p in data.image_paths] == [f"{i:06d}.jpg" for i in range(1, 21)]
    np.testing.assert_allclose(data.pos_ratio, expected[:18].mean(axis=0))
    paths, labels = data.split("test")
    assert [p.name for p in paths] == ["000019.jpg", "000020.jpg"]
    np.testing.assert_array_equal(labels, expected[18:])
    counts = pa100k.check(tmp_path / "PA-100K")
    assert counts == {"train": 16, "val": 2, "test": 2, "trainval": 18, "attributes": 26}


def test_mat_layout_is_the_real_one(pa100k_master: Path) -> None:
    mat = loadmat(str(pa100k_master / "annotation.mat"))
    # How the public loaders index it: names[i][0][0], attributes[i][0][0], labels (N, 26).
    assert mat["train_images_name"].shape == (16, 1)
    assert mat["train_images_name"][0][0][0] == "000001.jpg"
    assert mat["attributes"].shape == (26, 1)
    assert [mat["attributes"][i][0][0] for i in range(26)] == list(pa100k.ATTRIBUTES)
    assert mat["test_label"].shape == (2, 26)
    assert set(np.unique(mat["train_label"])) <= {0, 1}


def _rewrite_mat(root: Path, **changes: object) -> None:
    mat = {k: v for k, v in loadmat(str(root / "annotation.mat")).items() if not k.startswith("__")}
    for key, value in changes.items():
        if value is None:
            del mat[key]
        else:
            mat[key] = value
    savemat(str(root / "annotation.mat"), mat)


@pytest.mark.parametrize("key", ["val_label", "test_images_name", "attributes"])
def test_mat_without_a_key(pa100k_dir: Path, key: str) -> None:
    _rewrite_mat(pa100k_dir, **{key: None})
    with pytest.raises(DataFormatError, match=f"annotation.mat: missing key '{key}'"):
        pa100k.check(pa100k_dir)


def test_labels_must_be_binary_and_sized(pa100k_dir: Path) -> None:
    labels = loadmat(str(pa100k_dir / "annotation.mat"))["train_label"].copy()
    labels[3, 4] = 2
    _rewrite_mat(pa100k_dir, train_label=labels)
    with pytest.raises(DataFormatError, match=r"annotation.mat: train_label\[3, 4\] = 2"):
        pa100k.load(pa100k_dir)
    _rewrite_mat(pa100k_dir, train_label=labels[:, :20])
    with pytest.raises(DataFormatError, match="train_label has shape"):
        pa100k.load(pa100k_dir)


def test_missing_and_unreadable_annotation(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="annotation.mat: annotation file does not exist"):
        pa100k.check(tmp_path)
    (tmp_path / "annotation.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFormatError, match="annotation.mat: not a readable MATLAB file"):
        pa100k.check(tmp_path)


def test_listed_image_missing(pa100k_dir: Path) -> None:
    (pa100k_dir / "data" / "000007.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"000007\.jpg: image listed in annotation.mat does not exist"):
        pa100k.check(pa100k_dir)


def test_corrupt_image(pa100k_dir: Path) -> None:
    (pa100k_dir / "data" / "000019.jpg").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(DataFormatError, match=r"000019\.jpg: not a readable image"):
        pa100k.check(pa100k_dir)


def test_truncated_image_is_caught_when_decoded(pa100k_dir: Path) -> None:
    # A cut-off JPEG passes the header check; decoding it for training must still name the file.
    path = pa100k_dir / "data" / "000002.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the header intact, the pixels cut
    data = pa100k.load(pa100k_dir)
    images = AttributeImages(data.image_paths, data.labels, eval_transform((32, 16)))
    image, label = images[0]
    assert image.shape == (3, 32, 16) and label.shape == (26,)
    with pytest.raises(ImageReadError, match=r"000002\.jpg: cannot decode image"):
        images[1]


def test_decode_error_survives_a_dataloader_worker(pa100k_dir: Path) -> None:
    import torch

    path = pa100k_dir / "data" / "000001.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # passes the loader's header check
    data = pa100k.load(pa100k_dir)
    loader = torch.utils.data.DataLoader(
        AttributeImages(data.image_paths[:2], data.labels[:2], eval_transform((32, 16))), num_workers=1
    )
    with pytest.raises(ImageReadError) as info:
        next(iter(loader))
    assert str(info.value).startswith(str(pa100k_dir / "data" / "000001.jpg"))
    assert "\n" not in str(info.value)


def test_write_synth_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from saip_bench.tasks.attribute.data import render

    def broken(*args, **kwargs):
        raise RuntimeError("generator failed")
        yield

    monkeypatch.setattr(render, "render_persons", broken)
    with pytest.raises(RuntimeError):
        DATASETS.get("pa100k").write_synth(tmp_path / "PA-100K", ids=2, images=5, seed=0)
    assert not (tmp_path / "PA-100K").exists()
    assert not any(tmp_path.iterdir())


def test_copy_is_independent(pa100k_master: Path, pa100k_dir: Path) -> None:
    shutil.rmtree(pa100k_dir / "data")
    assert pa100k.check(pa100k_master)["train"] == 16

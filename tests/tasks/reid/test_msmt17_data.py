"""MSMT17 (V1): list files, camera parsing, train = train + val, V2 rejected, malformed inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.tasks.reid.data.msmt17 import camera_of, check, load_msmt17


@pytest.fixture
def msmt(synth_msmt: Path, tmp_path: Path) -> Path:
    """A private copy the test may break."""
    return Path(shutil.copytree(synth_msmt, tmp_path / "MSMT17_V1"))


def test_registered_module_and_counts(synth_msmt: Path) -> None:
    assert DATASETS.get("msmt17").checker == f"{check.__module__}:{check.__name__}"
    counts = check(synth_msmt)
    lines = {
        n: (synth_msmt / f"list_{n}.txt").read_text().splitlines()
        for n in ("train", "val", "query", "gallery")
    }
    assert counts == {
        "train": len(lines["train"]) + len(lines["val"]),
        "train_ids": 4,
        "query": len(lines["query"]),
        "gallery": len(lines["gallery"]),
    }
    assert len(lines["val"]) > 0 and counts["query"] > 0


def test_loader_follows_the_real_format(synth_msmt: Path) -> None:
    splits = load_msmt17(synth_msmt)
    first = (synth_msmt / "list_query.txt").read_text().splitlines()[0]
    rel, pid = first.split()
    path, q_pid, q_cam = splits.query[0]
    assert path == synth_msmt / "test" / rel and q_pid == int(pid) and q_cam == camera_of(rel) - 1
    assert camera_of("0000/0000_000_01_0303morning_0015_0.jpg") == 1
    assert camera_of("0123_045_15_0303noon_0015_1.jpg") == 15
    assert sorted({pid for _, pid, _ in splits.train}) == list(range(splits.num_train_pids))
    assert all(p.parent.parent.name == "train" for p, _, _ in splits.train)
    assert all(0 <= cam < 15 for _, _, cam in splits.train + splits.query + splits.gallery)


def test_v2_layout_is_rejected_clearly(tmp_path: Path) -> None:
    root = tmp_path / "MSMT17_V2"
    (root / "mask_train_v2").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="MSMT17_V2 layout .* not supported"):
        check(root)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such folder") as err:
        check(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_missing_list_file(msmt: Path) -> None:
    (msmt / "list_gallery.txt").unlink()
    with pytest.raises(DataFormatError, match="list_gallery.txt: list file is missing"):
        check(msmt)


def test_bad_file_name_in_a_list(msmt: Path) -> None:
    with open(msmt / "list_train.txt", "a") as handle:
        handle.write("0000/bad_name.jpg 0\n")
    with pytest.raises(
        DataFormatError, match=r"list_train.txt: line \d+: bad image name '0000/bad_name.jpg'"
    ):
        check(msmt)


def test_list_line_pointing_to_a_missing_image(msmt: Path) -> None:
    rel = (msmt / "list_query.txt").read_text().splitlines()[0].split()[0]
    (msmt / "test" / rel).unlink()
    with pytest.raises(
        DataFormatError, match="listed in list_query.txt line 1 but the image is missing"
    ) as err:
        check(msmt)
    assert str(msmt / "test" / rel) in str(err.value) and "\n" not in str(err.value)


def test_corrupt_jpeg(msmt: Path) -> None:
    rel = (msmt / "list_gallery.txt").read_text().splitlines()[2].split()[0]
    (msmt / "test" / rel).write_bytes(b"this is not an image")
    with pytest.raises(DataFormatError, match="not a JPEG") as err:
        check(msmt)
    assert str(msmt / "test" / rel) in str(err.value)


def test_synth_needs_enough_images(tmp_path: Path) -> None:
    from saip_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="msmt17 synth"):
        DATASETS.get("msmt17").write_synth(tmp_path / "x", ids=4, images=4, seed=0)
    assert not (tmp_path / "x").exists()

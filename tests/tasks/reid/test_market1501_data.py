import shutil
from collections import Counter

import pytest

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError, SaipError
from saip_bench.tasks.reid.data import market1501 as m

IDS, IMAGES = 6, 24  # 3 train ids, 3 test ids, 4 crops each


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / m.FOLDER
    DATASETS.get("market1501").write_synth(out, ids=IDS, images=IMAGES, seed=11)
    return out


def _files(root, split):
    return sorted((root / m.SPLIT_DIRS[split]).glob("*.jpg"))


def test_layout_and_names(market):
    for split in ("train", "query", "gallery"):
        files = _files(market, split)
        assert files and all(m.NAME_RE.match(p.name) for p in files)
        for p in files:
            assert p.read_bytes()[:3] == b"\xff\xd8\xff"
    pids = {
        split: {m.parse_name(p)[0] for p in _files(market, split)} for split in ("train", "query", "gallery")
    }
    assert len(pids["train"]) == IDS // 2 and not pids["train"] & (pids["query"] | pids["gallery"])
    assert {0, -1} <= pids["gallery"] and not {0, -1} & (pids["train"] | pids["query"])
    assert pids["query"] == pids["gallery"] - {0, -1}


def test_round_trip_exact_counts(market):
    per_id = IMAGES // IDS
    n_test = IDS - IDS // 2
    query = _files(market, "query")
    gallery_files = _files(market, "gallery")
    names = Counter(m.parse_name(p)[0] for p in gallery_files)
    assert names[0] == max(1, n_test // 2) and names[-1] == max(1, n_test // 4)
    assert len(query) + len(gallery_files) - names[0] - names[-1] == n_test * per_id
    counts = m.check(market)
    assert counts == {"train": (IDS // 2) * per_id, "train_ids": IDS // 2, "query": len(query),
                      "gallery": len(gallery_files) - names[-1]}  # fmt: skip
    splits = m.load_market1501(market)
    assert len(splits.train) == counts["train"] and len(splits.query) == counts["query"]
    assert len(splits.gallery) == counts["gallery"]
    assert (
        sorted({pid for _, pid, _ in splits.train})
        == list(range(IDS // 2))
        == list(range(splits.num_train_pids))
    )
    assert all(0 <= cam < 6 for split in (splits.train, splits.query, splits.gallery) for _, _, cam in split)
    assert all(pid != -1 for _, pid, _ in splits.gallery) and any(pid == 0 for _, pid, _ in splits.gallery)
    # Every query has a true match in the gallery from another camera; at most two queries per (id, camera).
    gallery = {(pid, cam) for _, pid, cam in splits.gallery}
    for _, pid, cam in splits.query:
        assert any(p == pid and c != cam for p, c in gallery)
    assert max(Counter((pid, cam) for _, pid, cam in splits.query).values()) <= 2
    # Loading through the parent folder works too.
    assert m.check(market.parent) == counts


def test_same_seed_same_dataset(market, tmp_path):
    DATASETS.get("market1501").write_synth(tmp_path / "again", ids=IDS, images=IMAGES, seed=11)
    for split in ("train", "query", "gallery"):
        a, b = _files(market, split), _files(tmp_path / "again", split)
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


@pytest.fixture
def copy(market, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(market, dst)
    return dst


def test_missing_folder(copy):
    shutil.rmtree(copy / "query")
    with pytest.raises(DataFormatError) as err:
        m.check(copy)
    assert str(copy / "query") in str(err.value)


def test_bad_file_name(copy):
    victim = _files(copy, "train")[0]
    victim.rename(victim.with_name("person_7.jpg"))
    with pytest.raises(DataFormatError, match="person_7.jpg: file name does not match"):
        m.check(copy)


def test_camera_out_of_range(copy):
    victim = _files(copy, "gallery")[-1]
    bad = victim.with_name("0999_c7s1_000100_01.jpg")
    victim.rename(bad)
    with pytest.raises(DataFormatError, match=r"0999_c7s1_000100_01.jpg: camera 7"):
        m.check(copy)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_jpeg(copy, damage):
    victim = _files(copy, "query")[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"not a jpeg at all")
    with pytest.raises(DataFormatError) as err:
        m.check(copy)
    assert victim.name in str(err.value) and "\n" not in str(err.value)


def test_ignores_other_files(copy):
    (copy / "bounding_box_test" / "Thumbs.db").write_bytes(b"\x00")
    assert m.check(copy)["train"] == (IDS // 2) * (IMAGES // IDS)


def test_writer_refuses_bad_input(tmp_path, market):
    with pytest.raises(SaipError, match="at least 2 identities"):
        DATASETS.get("market1501").write_synth(tmp_path / "x", ids=1, images=10, seed=0)
    with pytest.raises(SaipError, match="not empty"):
        DATASETS.get("market1501").write_synth(market, ids=2, images=4, seed=0)

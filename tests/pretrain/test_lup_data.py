import re

import pytest
from PIL import Image

from saip_bench.errors import DataFormatError, SaipError
from saip_bench.pretrain.data import lup

NAME = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}_\d\.jpg$")


@pytest.fixture(scope="module")
def lup_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lup") / "LUP"
    lup.write_synth(out, ids=3, images=12, seed=4)
    return out


def test_write_check_list(lup_dir):
    assert lup.check(lup_dir) == {"images": 12}
    paths = lup.list_images(lup_dir)
    assert len(paths) == 12 and paths == sorted(paths)
    assert all(NAME.match(p.name) for p in paths)
    assert len({p.name[:11] for p in paths}) == 3  # one "video" per person
    sizes = set()
    for p in paths:
        with Image.open(p) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            w, h = img.size
            assert 224 <= h <= 320 and 0.35 <= w / h <= 0.6
            sizes.add(img.size)
    assert len(sizes) > 1


def test_same_seed_same_files(lup_dir, tmp_path):
    lup.write_synth(tmp_path / "again", ids=3, images=12, seed=4)
    a, b = lup.list_images(lup_dir), lup.list_images(tmp_path / "again")
    assert [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


def test_list_images_recursive(tmp_path):
    (tmp_path / "shard1").mkdir()
    Image.new("RGB", (8, 16)).save(tmp_path / "shard1" / "b.png")
    Image.new("RGB", (8, 16)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in lup.list_images(tmp_path)] == [
        "a.jpg",
        "shard1/b.png",
    ]
    assert lup.check(tmp_path) == {"images": 2}


def test_malformed(tmp_path, lup_dir):
    with pytest.raises(DataFormatError, match="no .jpg/.png images"):
        lup.check(tmp_path)
    with pytest.raises(DataFormatError, match="no such folder"):
        lup.check(tmp_path / "missing")
    Image.new("RGB", (8, 16)).save(tmp_path / "good.jpg")
    bad = tmp_path / "zz_bad.jpg"
    bad.write_bytes((tmp_path / "good.jpg").read_bytes()[:40])
    with pytest.raises(DataFormatError) as err:
        lup.check(tmp_path)
    assert "zz_bad.jpg" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SaipError, match="not empty"):
        lup.write_synth(lup_dir, ids=1, images=1, seed=0)

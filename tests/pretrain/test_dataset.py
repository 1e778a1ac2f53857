"""The pretraining dataset and its loader: samples as pure functions of (seed, epoch, index), one loader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.errors import DataFormatError
from saip_bench.pretrain.data.dataset import EpochKeys, PretrainDataset, micro_batches, rank_indices
from saip_bench.pretrain.views import collate_views


@pytest.fixture(scope="module")
def lup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lup")
    rng = np.random.default_rng(3)
    for i in range(6):
        pixels = rng.integers(0, 256, (48, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.jpg", quality=90)
    return folder


def _dataset(folder, **overrides) -> PretrainDataset:
    from saip_bench.pretrain.config import load_config

    cfg = load_config("smoke_cpu", ["views.local_crops=2", *(f"{k}={v}" for k, v in overrides.items())])
    return PretrainDataset.from_config(folder, cfg, seed=5)


def test_a_sample_is_a_function_of_seed_epoch_and_index(lup):
    ds = _dataset(lup)
    a, b = ds[(1, 2)], ds[(1, 2)]
    assert a.keys() == {"globals", "locals", "composite", "masks"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["globals"], ds[(2, 2)]["globals"])  # another epoch, other views
    other_seed = PretrainDataset(ds.paths, ds.views, seed=6)
    assert not torch.equal(a["globals"], other_seed[(1, 2)]["globals"])
    keys = [(1, 2), (1, 0), (1, 5)]
    batch = collate_views(ds.__getitems__(keys))  # what a loader worker does
    expected = collate_views([ds[k] for k in keys])
    assert batch.keys() == expected.keys() and all(torch.equal(batch[k], expected[k]) for k in batch)


def test_an_unreadable_file_is_one_error_naming_it(lup, tmp_path):
    for i in range(2):
        (tmp_path / f"ok{i}.jpg").write_bytes((lup / f"p{i}.jpg").read_bytes())
    data = (lup / "p2.jpg").read_bytes()
    (tmp_path / "zz_cut.jpg").write_bytes(data[: len(data) // 3])
    ds = _dataset(tmp_path)
    bad = [i for i, p in enumerate(ds.paths) if p.name == "zz_cut.jpg"][0]
    for fetch in (lambda: ds[(0, bad)], lambda: ds.__getitems__([(0, 0), (0, bad)])):
        with pytest.raises(DataFormatError) as err:
            fetch()
        assert "zz_cut.jpg" in str(err.value) and "\n" not in str(err.value)


def test_epoch_keys_run_on_through_the_epochs():
    keys = EpochKeys(10, seed=1, rank=1, world_size=2, batch_size=2, epoch=3, skip=2)
    it = iter(keys)
    first = [next(it) for _ in range(2 + 4 + 4)]  # rest of epoch 3, epochs 4 and 5
    assert [e for e, _ in first] == [3, 3, 4, 4, 4, 4, 5, 5, 5, 5]
    assert [i for _, i in first[:2]] == rank_indices(10, epoch=3, seed=1, rank=1, world_size=2)[2:4]
    assert [i for _, i in first[2:6]] == rank_indices(10, epoch=4, seed=1, rank=1, world_size=2)[:4]


class _WorkerPid:
    """Views that only say which process made them."""

    def __call__(self, img, rng):
        return {"pid": torch.tensor(os.getpid())}


def test_workers_persist_across_epochs_and_batches_do_not_change(lup):
    ds = _dataset(lup)
    inline = micro_batches(ds, batch_size=2, seed=5)
    expected = [next(inline) for _ in range(7)]  # 3 batches an epoch: into epoch 2
    workers = micro_batches(ds, batch_size=2, seed=5, num_workers=2, prefetch_factor=1)
    got = [next(workers) for _ in range(7)]
    for want, have in zip(expected, got, strict=True):
        assert all(torch.equal(want[k], have[k]) for k in want)
    workers.close()
    pids = PretrainDataset(ds.paths, _WorkerPid(), seed=5)
    stream = micro_batches(pids, batch_size=2, seed=5, num_workers=1)
    seen = {int(p) for _ in range(7) for p in next(stream)["pid"]}
    stream.close()
    assert len(seen) == 1 and os.getpid() not in seen  # one worker made epochs 0, 1 and 2

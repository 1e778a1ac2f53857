"""Resume after SIGKILL at a random step gives bit-identical weights to an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

STEPS = 8
TINY = [
    "--config", "smoke_cpu", "--steps", str(STEPS),
    "model.depth=2", "model.embed_dim=32", "model.num_heads=2", "model.mid_block=0",
    "heads.out_dim=64", "heads.hidden_dim=32", "heads.bottleneck_dim=16", "views.local_crops=3",
    "train.batch_size=2", "train.checkpoint_every=1", "train.deterministic=true", "train.threads=1",
    "train.tensorboard=false", "train.warmup_steps=2",
]  # fmt: skip


def write_lup(folder, n: int = 10) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        img = rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"v0_{i:04d}_00.jpg")


def command(data, out, *extra: str) -> list[str]:
    code = "from saip_bench.cli.app import main; main()"
    return [sys.executable, "-c", code, "pretrain", "--data", str(data), "--out", str(out), *TINY, *extra]


def step_on_disk(out) -> int:
    try:
        return json.loads((out / "train_state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    data = tmp_path / "LUP"
    write_lup(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(command(data, full), check=True, env=env, capture_output=True, timeout=600)

    kill_after = random.Random().randint(2, STEPS - 2)  # a different step on every run of the test
    proc = subprocess.Popen(
        command(data, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while step_on_disk(killed) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    stopped_at = step_on_disk(killed)
    assert 0 < stopped_at < STEPS

    res = subprocess.run(
        command(data, killed, "--resume"), env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]

    a = torch.load(full / "checkpoint.pt", weights_only=False)
    b = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == STEPS
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:  # student, teacher, heads and the CSM centre, bit for bit
        assert torch.equal(a["model"][key], b["model"][key]), f"{key} differs (killed at step {stopped_at})"
    from safetensors.torch import load_file  # bytes may differ: the header's metadata order is not fixed

    exported = [load_file(run / "backbone.safetensors") for run in (full, killed)]
    assert exported[0].keys() == exported[1].keys()
    assert all(torch.equal(exported[0][k], exported[1][k]) for k in exported[0])
    assert not list(killed.glob(".checkpoint.pt.*.tmp"))  # a write cut by the kill leaves nothing behind


def _dataset(tmp_path):
    from saip_bench.pretrain.config import load_config
    from saip_bench.pretrain.data.dataset import PretrainDataset

    write_lup(tmp_path / "LUP", n=6)
    cfg = load_config("smoke_cpu", ["views.local_crops=2"])
    return PretrainDataset.from_config(tmp_path / "LUP", cfg, seed=5)


def test_data_position_maps_to_the_same_batches(tmp_path):
    from saip_bench.pretrain.data.dataset import micro_batches

    ds = _dataset(tmp_path)
    stream = micro_batches(ds, batch_size=2, seed=5)
    first = [next(stream) for _ in range(5)]  # 3 batches per epoch: crosses into epoch 1
    later = micro_batches(ds, batch_size=2, seed=5, start=4, num_workers=1)
    again = next(later)
    assert all(torch.equal(first[4][k], again[k]) for k in first[4])
    assert not torch.equal(first[0]["globals"], first[3]["globals"])  # epoch 1 is a fresh shuffle


def test_ranks_split_each_epoch(tmp_path):
    from saip_bench.pretrain.data.dataset import rank_indices

    a = rank_indices(10, epoch=3, seed=1, rank=0, world_size=2)
    b = rank_indices(10, epoch=3, seed=1, rank=1, world_size=2)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    assert a != rank_indices(10, epoch=4, seed=1, rank=0, world_size=2)

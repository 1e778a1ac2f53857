"""Two processes under torchrun (gloo, CPU): identical replicas and centres after every step.

That the centre update averages over ranks is tested in tests/pretrain/objectives/test_csm.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

STEPS = 3


def write_lup(folder, n: int = 12) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(n):
        img = rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"v0_{i:04d}_00.jpg")


@pytest.mark.slow
def test_two_process_gloo_run_keeps_replicas_identical(tmp_path):
    data, out = tmp_path / "LUP", tmp_path / "run"
    write_lup(data)
    cmd = [
        sys.executable, "-c", "from saip_bench.cli.app import main; main()", "pretrain",
        "--config", "smoke_cpu", "--data", str(data), "--out", str(out), "--steps", str(STEPS),
        "--nproc-per-node", "2", "device=cpu",
        "model.depth=2", "model.embed_dim=32", "model.num_heads=2", "model.mid_block=0",
        "heads.out_dim=64", "heads.hidden_dim=32", "heads.bottleneck_dim=16", "views.local_crops=3",
        "train.batch_size=2", "train.threads=1", "train.record_digests=true", "train.tensorboard=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    rows = [json.loads(line) for line in (out / "digests.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for row in rows:
        rank0, rank1 = row["ranks"]
        assert rank0[0] == rank1[0], f"student weights differ across ranks at step {row['step']}"
        assert rank0[1] == rank1[1], f"CSM centre differs across ranks at step {row['step']}"
    assert len({r["ranks"][0][0] for r in rows}) == STEPS  # the weights did change every step
    assert (out / "backbone.safetensors").is_file() and (out / "checkpoint.pt").is_file()
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2

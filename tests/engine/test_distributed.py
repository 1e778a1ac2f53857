"""Rank helpers: no-ops in one process; under torchrun (2 gloo processes) collectives, rank 0 writing, and a
non-finite loss on one rank stopping both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from saip_bench.engine import check_finite
from saip_bench.engine import distributed as D
from saip_bench.errors import NonFiniteLossError


def test_one_process_is_rank_zero_and_collectives_are_no_ops() -> None:
    assert not D.is_dist() and D.is_main() and D.rank() == 0 and D.world_size() == 1
    t = torch.tensor([1.0, 3.0])
    assert D.all_reduce_mean(t) is t and t.tolist() == [1.0, 3.0]
    assert D.all_reduce_sum(t).tolist() == [1.0, 3.0]
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert [x.tolist() for x in D.all_gather_tensor(t)] == [[1.0, 3.0]]
    D.barrier()
    module = nn.Linear(2, 2)
    assert D.wrap_ddp(module, "cpu") is module and D.unwrap(module) is module
    info = D.init_distributed("cpu")
    assert info == D.DistInfo() and info.is_main and not info.distributed


def test_a_non_finite_loss_is_one_error_line_naming_run_step_and_terms(tmp_path: Path) -> None:
    check_finite({"loss": torch.tensor(1.0)}, run_dir=tmp_path, step=3)  # finite: nothing happens
    losses = {"loss": torch.tensor(float("nan")), "ce": torch.tensor(0.25)}
    with pytest.raises(NonFiniteLossError) as err:
        check_finite(losses, run_dir=tmp_path, step=7, advice="try a lower lr")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}: loss is not finite at step 7")
    assert "loss=nan, ce=0.25" in message and message.endswith("; try a lower lr")


WORKER = r"""
import json, os, sys
import torch
from torch import nn
from saip_bench.engine import distributed as D
from saip_bench.engine import TrainLogger, check_finite
from saip_bench.errors import NonFiniteLossError

out = sys.argv[1]
info = D.init_distributed("cpu")
result = {"rank": D.rank(), "world": D.world_size(), "main": D.is_main(), "info_main": info.is_main}
t = torch.tensor([float(info.rank) * 2.0])
result["mean"] = D.all_reduce_mean(t.clone()).item()
result["sum"] = D.all_reduce_sum(t.clone()).item()
result["objects"] = D.all_gather_object(info.rank)
module = nn.Linear(2, 2)
wrapped = D.wrap_ddp(module, info.device)
result["ddp"] = type(wrapped).__name__
result["unwrapped"] = D.unwrap(wrapped) is module
with TrainLogger(out, total_steps=2, log_every=1, tensorboard=False) as logger:
    logger.step(1, {"loss": 1.0}, 1e-3)
loss = torch.tensor(float("nan") if info.rank == 1 else 1.0)
try:
    check_finite({"loss": loss}, run_dir=out, step=5)
    result["raised"] = False
except NonFiniteLossError:
    result["raised"] = True
with open(os.path.join(out, f"rank{info.rank}.json"), "w") as handle:
    json.dump(result, handle)
D.cleanup()
"""


@pytest.mark.slow
def test_two_gloo_processes(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += [str(script), str(tmp_path)]
    res = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, result in enumerate(ranks):
        assert result["rank"] == r and result["world"] == 2
        assert result["main"] is (r == 0) and result["info_main"] is (r == 0)
        assert result["mean"] == 1.0 and result["sum"] == 2.0 and result["objects"] == [0, 1]
        assert result["ddp"] == "DistributedDataParallel" and result["unwrapped"]
        assert result["raised"], "a NaN on rank 1 must stop rank 0 too, or it would hang in a collective"
    # Only rank 0 writes the log.
    lines = (tmp_path / "train.log").read_text(encoding="utf-8").splitlines()
    assert len([line for line in lines if "step 1/2" in line]) == 1

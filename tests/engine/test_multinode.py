"""Multi-node launch: torchrun's command line, the preflight's one-line refusals, worker failures as one line,
and a 2-node pretraining on localhost that equals the 1-node 2-process run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from saip_bench.errors import ConfigError, SaipError
from saip_bench.launch.rendezvous import Nodes, parse_endpoint, preflight
from saip_bench.launch.torchrun import TORCHRUN, command_args, torchrun_argv
from tests.pretrain_runs import ENV, lup, pretrain_args, reference_run, saip, sha256


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------------------ command line
def test_the_workers_get_the_command_without_the_launcher_options() -> None:
    argv = ["-v", "pretrain", "--nnodes", "2", "--node-rank=1", "--data", "d", "--nproc-per-node", "2", "a=1"]
    strip = ("--nproc-per-node", "--nnodes", "--node-rank")
    assert command_args(argv, "pretrain", strip=strip) == ["--data", "d", "a=1"]
    one = torchrun_argv("evaluate", ["evaluate", "--task", "reid", "--nproc-per-node=4"], nproc_per_node=4)
    assert one == [*TORCHRUN, "--standalone", "--nproc-per-node=4", "--max-restarts=0"] + [
        "-m", "saip_bench.cli.evaluate", "--task", "reid",
    ]  # fmt: skip
    nodes = Nodes(count=2, rank=1, endpoint="node0:29400", timeout_s=30)
    multi = torchrun_argv("pretrain", argv, nproc_per_node=2, nodes=nodes, strip=strip)
    assert "--standalone" not in multi
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-endpoint=node0:29400", "--rdzv-conf=timeout=30"} <= set(
        multi
    )
    assert multi[-5:] == ["-m", "saip_bench.cli.pretrain", "--data", "d", "a=1"]


# ------------------------------------------------------------------------------------------- preflight
def test_preflight_refuses_each_mistake_in_one_line() -> None:
    preflight(Nodes())  # one machine: nothing to check
    assert parse_endpoint("[::1]:29500") == ("::1", 29500)
    cases = [
        (Nodes(count=2, rank=2, endpoint="127.0.0.1:29500"), ConfigError, "--node-rank 2: out of range"),
        (Nodes(rank=1), ConfigError, "--node-rank 1: out of range for --nnodes 1"),
        (Nodes(count=2), ConfigError, "needs --rdzv-endpoint HOST:PORT"),
        (Nodes(count=2, endpoint="node0"), ConfigError, "expected HOST:PORT"),
        (Nodes(count=2, rank=1, endpoint="no-such-host.invalid:29500"), SaipError, "cannot resolve host"),
    ]
    for nodes, kind, message in cases:
        with pytest.raises(kind) as err:
            preflight(nodes)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_node_zero_needs_a_free_port_and_the_others_a_live_endpoint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(SaipError, match="node 0 cannot listen there"):
            preflight(Nodes(count=2, rank=0, endpoint=endpoint))
        preflight(Nodes(count=2, rank=1, endpoint=endpoint, timeout_s=5))  # it answers: go
    dead = f"127.0.0.1:{free_port()}"
    preflight(Nodes(count=2, rank=0, endpoint=dead))  # free: node 0 may listen there
    with pytest.raises(SaipError) as err:
        preflight(Nodes(count=2, rank=1, endpoint=dead, timeout_s=0.3))
    assert str(err.value) == f"rendezvous endpoint {dead} not reachable after 0.3s (is node 0 started?)"


def test_more_processes_than_gpus_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from saip_bench.engine.distributed import init_distributed

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(SaipError, match=r"^cuda:1: this machine has 1 CUDA device\(s\)"):
        init_distributed("cuda")  # refused before any CUDA call or process group


# ------------------------------------------------------------------------------------- worker failures
WORKER = r"""
import os, sys, time
from saip_bench.launch.torchrun import note_worker_exit
rank, mode = int(os.environ["RANK"]), sys.argv[1]
if mode == "every":  # a user error each rank hits: rank 0's line is on the terminal
    print(f"error: bad value on rank {rank}", file=sys.stderr)
    note_worker_exit(1)
    sys.exit(1)
if rank == 1:  # one rank alone fails (its output goes to a log file)
    print("error: disk on fire", file=sys.stderr)
    sys.exit(3)
time.sleep(60)  # stopped by the agent when rank 1 fails
"""

LAUNCHER = r"""
import json, sys
from saip_bench.launch.torchrun import TORCHRUN, run_torchrun
out = {}
for mode in ("every", "one"):
    result = run_torchrun([*TORCHRUN, "--standalone", "--nproc-per-node=2", sys.argv[1], mode])
    out[mode] = [result.exit_code, result.message]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_failed_worker_is_one_line_and_its_exit_status(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(worker)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["every"] == [1, None]  # rank 0 said it already
    assert out["one"] == [3, "rank 1: disk on fire"]
    assert res.stderr.splitlines() == ["error: bad value on rank 0"]  # nothing from torchrun itself


# ------------------------------------------------------------------------------------- the real thing
@pytest.mark.slow
def test_two_nodes_on_localhost_equal_one_node_with_two_processes(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = reference_run(tmp_path_factory)  # --nproc-per-node 2, the same config
    out = tmp_path / "two-nodes"
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = ["--nnodes", "2", "--rdzv-endpoint", endpoint, "--rdzv-timeout", "120"]
    data = lup(tmp_path / "LUP")
    procs = [
        subprocess.Popen(
            saip(*pretrain_args(data, out), *nodes, "--node-rank", str(rank)),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (1, 0)  # node 1 first: it waits for node 0's endpoint
    ]
    logs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    rows = [json.loads(line) for line in (out / "digests.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert row["ranks"][0] == row["ranks"][1], f"the nodes' weights differ at step {row['step']}"
    assert (out / "digests.jsonl").read_text() == (reference / "digests.jsonl").read_text()
    assert sha256(out / "backbone.safetensors") == sha256(reference / "backbone.safetensors")


@pytest.mark.slow
def test_a_dead_endpoint_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out, endpoint = tmp_path / "run", f"127.0.0.1:{free_port()}"
    args = ["pretrain", "-c", "smoke_cpu", "--data", str(tmp_path), "--out", str(out), "--nnodes", "2"]
    args += ["--node-rank", "1", "--rdzv-endpoint", endpoint, "--rdzv-timeout", "2"]
    res = subprocess.run(saip(*args), env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    message = f"rendezvous endpoint {endpoint} not reachable after 2s (is node 0 started?)"
    assert res.stderr.strip() == f"error: {message}"
    assert res.stdout == "" and not out.exists()

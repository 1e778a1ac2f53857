"""saip_bench.launch.slurm on a real one-node Slurm cluster (submitit), and its pure parts without one."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from saip_bench.engine.signals import StopRequest
from saip_bench.errors import ConfigError, Interrupted, SaipError
from saip_bench.launch.slurm import (
    GONE,
    Requeueable,
    SlurmSettings,
    first_host,
    job_states,
    make_executor,
    restart_count,
    submit,
    submit_array,
    torch_env_from_slurm,
    wait_result,
)

# The job callables below live in this test module, which a Slurm job cannot import: pickle them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

RESULT_TIMEOUT_S = 90  # a bound for a hung job, far above the few seconds each takes


# --- job callables (run on the Slurm node) ------------------------------------------------------------------


def _add(a: int, b: int) -> tuple[int, str]:
    return a + b, os.environ["SLURM_JOB_ID"]


def _array_task(index: int) -> tuple[int, str]:
    return index * 10, os.environ["SLURM_ARRAY_TASK_ID"]


def _note(path: Path, **fields: object) -> None:
    with path.open("a") as out:
        out.write(json.dumps(fields) + "\n")


def _steps(folder: Path, total: int) -> dict:
    """A training loop in miniature: one step per 0.2 s, its state saved after each step, a graceful stop on
    SIGTERM (StopRequest, as the engine's loop) that raises Interrupted."""
    state = folder / "state.json"
    step = json.loads(state.read_text())["step"] if state.exists() else 0
    _note(folder / "trace.jsonl", event="start", step=step, restarts=restart_count())
    with StopRequest() as stop:
        while step < total:
            time.sleep(0.2)
            step += 1
            state.write_text(json.dumps({"step": step}))
            if stop.requested:
                _note(folder / "trace.jsonl", event="stop", step=step, signal=stop.requested)
                raise Interrupted(f"stopped after step {step}")
    return {"step": step, "restarts": restart_count()}


class ResumingJob(Requeueable):
    """Overrides ``__call__`` (as the campaign launcher's job does) and reports ``resuming``."""

    def __init__(self, folder: Path, total: int) -> None:
        super().__init__()
        self.folder, self.total = folder, total

    def __call__(self) -> dict:
        return {**_steps(self.folder, self.total), "resuming": self.resuming}


# --- helpers ------------------------------------------------------------------------------------------------


def _executor(tmp_path: Path, cluster, name: str, **settings: object):
    return make_executor(
        tmp_path / "slurm", SlurmSettings(partition=cluster.partition, time_min=5, **settings), name=name
    )


def _wait_for_step(folder: Path, at_least: int, job) -> None:
    state = folder / "state.json"
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while not (state.exists() and json.loads(state.read_text())["step"] >= at_least):
        assert time.monotonic() < deadline, f"job {job.job_id} made no progress: {job.stderr()}"
        time.sleep(0.1)


def _trace(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines()]


# --- on the cluster -----------------------------------------------------------------------------------------


def test_submit_returns_the_result_with_the_sbatch_flags(slurm_cluster, tmp_path):
    executor = _executor(tmp_path, slurm_cluster, "saip-t-submit", signal_delay_s=30)
    job = submit(executor, _add, 2, 3)
    assert wait_result(job, timeout_s=RESULT_TIMEOUT_S) == (5, job.job_id)
    script = Path(job.paths.submission_file).read_text()
    assert "#SBATCH --requeue" in script
    assert "#SBATCH --signal=USR2@30" in script
    assert f"#SBATCH --partition={slurm_cluster.partition}" in script
    assert "gpus-per-node" not in script  # 0 GPUs: no flag (clusters without GPUs refuse =0)


def test_job_array_of_three_capped_at_two(slurm_cluster, tmp_path):
    executor = _executor(tmp_path, slurm_cluster, "saip-t-array", array_parallelism=2)
    jobs = submit_array(executor, [functools.partial(_array_task, i) for i in range(3)])
    array_id = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(3)]
    assert "#SBATCH --array=0-2%2" in Path(jobs[0].paths.submission_file).read_text()
    states = job_states([job.job_id for job in jobs])
    assert set(states) == {job.job_id for job in jobs}
    assert all(state != GONE for state in states.values()), states  # just submitted: Slurm knows each
    results = [wait_result(job, timeout_s=RESULT_TIMEOUT_S) for job in jobs]
    assert results == [(0, "0"), (10, "1"), (20, "2")]


def test_invalid_partition_is_one_line_and_submits_nothing(slurm_cluster, tmp_path):
    settings = SlurmSettings(partition="no-such-partition")
    executor = make_executor(tmp_path / "slurm", settings, name="saip-t-bad")
    for attempt in (lambda: submit(executor, _add, 1, 2), lambda: submit_array(executor, [_add, _add])):
        with pytest.raises(SaipError) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message
        assert "invalid partition" in message.lower(), message
    queued = slurm_cluster.run("squeue", "-h", "-t", "all", "-n", "saip-t-bad", "-o", "%i")
    assert queued.returncode == 0 and queued.stdout.strip() == ""
    assert list((tmp_path / "slurm").iterdir()) == []  # submitit's pickles and scripts were removed


def test_scontrol_requeue_resumes_and_result_is_the_reruns(slurm_cluster, tmp_path):
    """Slurm kills the running job (SIGTERM), the loop saves and raises Interrupted; the job must not end on
    that error: the rerun (SLURM_RESTART_COUNT=1) continues from the saved step, and its result is the
    job's."""
    job = submit(_executor(tmp_path, slurm_cluster, "saip-t-requeue"), ResumingJob(tmp_path, total=12))
    _wait_for_step(tmp_path, 3, job)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, capture_output=True)
    result = wait_result(job, timeout_s=RESULT_TIMEOUT_S)  # FailedJobError(Interrupted) without the fix
    assert result == {"step": 12, "restarts": 1, "resuming": True}
    start, stop, rerun = _trace(tmp_path)
    assert (start["event"], start["step"], start["restarts"]) == ("start", 0, 0)
    assert (stop["event"], stop["signal"]) == ("stop", "SIGTERM")
    assert (rerun["event"], rerun["step"], rerun["restarts"]) == ("start", stop["step"], 1)


def test_preemption_signal_checkpoints_and_requeues(slurm_cluster, tmp_path):
    """USR2 (what Slurm sends signal_delay_s before the time limit): the loop finishes its step and saves,
    then submitit checkpoints (resuming=True) and requeues; the rerun continues and returns."""
    job = submit(_executor(tmp_path, slurm_cluster, "saip-t-usr2"), ResumingJob(tmp_path, total=12))
    _wait_for_step(tmp_path, 3, job)
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True, capture_output=True)
    result = wait_result(job, timeout_s=RESULT_TIMEOUT_S)
    assert result == {"step": 12, "restarts": 1, "resuming": True}
    start, stop, rerun = _trace(tmp_path)
    assert stop["event"] == "stop" and rerun["step"] == stop["step"] > start["step"] == 0
    assert "SIGUSR2" in job.stderr()


def test_scancel_keeps_the_interrupted_error(slurm_cluster, tmp_path):
    """A cancel is no requeue: the loop's Interrupted is the job's result, not swallowed."""
    submitit = pytest.importorskip("submitit")
    job = submit(_executor(tmp_path, slurm_cluster, "saip-t-cancel"), ResumingJob(tmp_path, total=200))
    _wait_for_step(tmp_path, 2, job)
    subprocess.run(["scancel", job.job_id], check=True, capture_output=True)
    with pytest.raises(submitit.core.utils.FailedJobError, match="Interrupted: stopped after step"):
        wait_result(job, timeout_s=RESULT_TIMEOUT_S)
    assert [event["event"] for event in _trace(tmp_path)] == ["start", "stop"]


def test_job_states_of_unknown_ids(slurm_cluster):
    assert job_states([]) == {}
    assert job_states(["999999", "999998_2"]) == {"999999": GONE, "999998_2": GONE}


# --- without a cluster --------------------------------------------------------------------------------------


def _slurm_env(**env: str) -> dict[str, str]:
    return {"SLURM_JOB_ID": "123456", **env}


def test_torch_env_single_task():
    env = _slurm_env(
        SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1",
        SLURM_JOB_NODELIST="vm", SLURM_TASKS_PER_NODE="1",
    )  # fmt: skip
    assert torch_env_from_slurm(environ=env) == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "vm",
        "MASTER_PORT": str(20000 + 123456 % 20000),
    }
    assert torch_env_from_slurm(29500, environ=env)["MASTER_PORT"] == "29500"


@pytest.mark.parametrize("with_scontrol", [True, False])
def test_torch_env_two_nodes_of_four_tasks(with_scontrol, monkeypatch, tmp_path):
    if not with_scontrol:
        monkeypatch.setenv("PATH", str(tmp_path))  # the fallback reading of the node list
    env = _slurm_env(
        SLURM_PROCID="5", SLURM_NTASKS="8", SLURM_LOCALID="1", SLURM_NODEID="1", SLURM_JOB_NUM_NODES="2",
        SLURM_JOB_NODELIST="gpu[07-08]", SLURM_TASKS_PER_NODE="4(x2)",
    )  # fmt: skip
    out = torch_env_from_slurm(environ=env)
    assert out == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": "23456",
    }


def test_torch_env_uneven_tasks_and_reads_os_environ(monkeypatch):
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    for key, value in _slurm_env(
        SLURM_PROCID="3", SLURM_NTASKS="4", SLURM_LOCALID="0", SLURM_NODEID="1", SLURM_JOB_NUM_NODES="2",
        SLURM_JOB_NODELIST="a1,b2", SLURM_TASKS_PER_NODE="3,1",
    ).items():  # fmt: skip
        monkeypatch.setenv(key, value)
    out = torch_env_from_slurm()
    assert (out["RANK"], out["LOCAL_WORLD_SIZE"], out["MASTER_ADDR"]) == ("3", "1", "a1")
    monkeypatch.delenv("SLURM_PROCID")
    with pytest.raises(SaipError, match="SLURM_PROCID"):
        torch_env_from_slurm()


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [("vm", "vm"), ("n1,n2", "n1"), ("node[3-5]", "node3"), ("gpu[003-005,9],cpu1", "gpu003")],
)
def test_first_host(nodelist, host):
    assert first_host(nodelist) == host


def test_settings_from_mapping():
    data = {"partition": "gpu", "nodes": 2, "gpus_per_node": 8, "mem_gb": 64, "requeue": False,
            "extra": {"constraint": "a100", "exclusive": True}, "setup": ["module load cuda"]}  # fmt: skip
    settings = SlurmSettings.from_mapping(data, where="c.yaml: launcher.slurm")
    assert settings == SlurmSettings(
        partition="gpu", nodes=2, gpus_per_node=8, mem_gb=64.0, requeue=False,
        extra={"constraint": "a100", "exclusive": True}, setup=["module load cuda"],
    )  # fmt: skip
    assert SlurmSettings.from_mapping({}, where="x") == SlurmSettings()


@pytest.mark.parametrize(
    ("data", "key"),
    [({"partiton": "gpu"}, "'partiton'"), ({"nodes": "2"}, "nodes"), ({"nodes": 0}, "nodes"),
     ({"requeue": "yes"}, "requeue"), ({"time_min": True}, "time_min"), ({"extra": {"a": [1]}}, "extra"),
     ({"setup": "module load x"}, "setup"), ({"mem_gb": -1}, "mem_gb")],
)  # fmt: skip
def test_settings_from_mapping_refuses(data, key):
    with pytest.raises(ConfigError) as err:
        SlurmSettings.from_mapping(data, where="c.yaml: launcher.slurm")
    assert str(err.value).startswith("c.yaml: launcher.slurm: ") and key in str(err.value)


def test_make_executor_without_sbatch(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SaipError, match="sbatch"):
        make_executor(tmp_path / "slurm", SlurmSettings(), name="x")


class _Counter(Requeueable):
    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start

    def run(self, step: int) -> tuple[int, bool]:
        if step < 0:
            raise Interrupted("stopped")
        return self.start + step, self.resuming


def test_requeueable_outside_slurm(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(key, raising=False)
    job = _Counter(10)
    assert job(5) == (15, False)
    with pytest.raises(Interrupted):  # not being requeued: the error is the job's
        job(-1)
    delayed = job.checkpoint(7)
    assert delayed.function is not job and delayed.function.resuming and not job.resuming
    assert delayed.args == (7,) and delayed.result() == (17, True)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # a rerun after a requeue resumes
    assert _Counter(0)(1) == (1, True)
    assert getattr(ResumingJob.__call__, "_requeue_guarded", False)  # an overridden __call__ is guarded too

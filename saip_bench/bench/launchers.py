"""Launchers: where a campaign's missing jobs run, behind one interface (:class:`Launcher`).

- ``local``: one job after another in this process; with ``gpus: [0, 1, ...]`` one subprocess per GPU at a
  time, each pinned with ``CUDA_VISIBLE_DEVICES``.
- ``torchrun``: one job after another, each over ``nproc_per_node`` processes (``torch.distributed.run``).
- ``slurm``: every job in one submitit job array (capped by ``array_parallelism``), requeued on preemption
  or time-out and resumed from its run's last checkpoint.

Jobs away from this process write record files only; the launcher ingests them into the workspace's store
when they are done (and ``saip report`` / ``saip bench status`` do it again, idempotently).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from saip_bench.bench.jobs import Job, Plan
from saip_bench.bench.runner import JobContext, run_job, write_job_file
from saip_bench.bench.state import jobs_folder, write_submitted
from saip_bench.errors import Interrupted, SaipError
from saip_bench.launch.slurm import Requeueable

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass
class LaunchResult:
    """What a launch did: the job ids by what became of them (``submitted``: handed to Slurm)."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    slurm_ids: dict[str, str] = field(default_factory=dict)


class Launcher(Protocol):
    """Runs (or submits) a campaign's jobs."""

    name: str

    def launch(self, plan: Plan, jobs: list[Job], *, wait: bool, say: Say) -> LaunchResult:
        """Run or submit ``jobs`` (the plan's missing ones); with ``wait`` return once every one ended."""
        ...


def make_launcher(plan: Plan) -> Launcher:
    """The launcher the campaign (or ``--launcher``) chose."""
    settings = plan.campaign.launcher
    if settings.name == "slurm":
        return SlurmLauncher()
    if settings.name == "torchrun":
        return TorchrunLauncher()
    return LocalLauncher()


def _context(plan: Plan, *, records_only: bool | None, device: str | None = None) -> JobContext:
    campaign = plan.campaign
    return JobContext(
        campaign_folder=campaign.folder.resolve(),
        workspace=campaign.workspace.resolve(),
        data_root=campaign.data_root.resolve(),
        device=device or campaign.device,
        records_only=records_only,
    )


def ingest(plan: Plan) -> int:
    """Take the record files the jobs wrote into the workspace's store; how many were new."""
    from saip_bench.results import open_workspace_store

    return open_workspace_store(plan.campaign.workspace).ingest(plan.campaign.workspace)


def _label(job: Job) -> str:
    return (
        f"{job.dataset} {job.protocol} {job.budget} x{job.scale_label} seed {job.seed} <- {job.backbone_name}"
    )


class LocalLauncher:
    """This machine: in this process, or one pinned subprocess per GPU of ``launcher.gpus``."""

    name = "local"

    def launch(self, plan: Plan, jobs: list[Job], *, wait: bool, say: Say) -> LaunchResult:
        """Run every job now (``wait`` changes nothing: a local campaign always runs to its end)."""
        if plan.campaign.launcher.gpus:
            return self._pinned(plan, jobs, say)
        result = LaunchResult()
        ctx = _context(plan, records_only=None)  # this process: the store too, unless on a network filesystem
        for n, job in enumerate(jobs, 1):
            say(f"[{n}/{len(jobs)}] {_label(job)}: running")
            t0 = time.perf_counter()
            try:
                run_job(job, ctx)
            except Interrupted:
                raise  # the campaign stops; its state files say where, and a rerun resumes
            except SaipError as err:
                say(f"[{n}/{len(jobs)}] {job.id}: failed: {err}")
                result.failed.append(job.id)
                continue
            say(f"[{n}/{len(jobs)}] {job.id}: done in {time.perf_counter() - t0:.1f} s")
            result.done.append(job.id)
        return result

    def _pinned(self, plan: Plan, jobs: list[Job], say: Say) -> LaunchResult:
        gpus = list(plan.campaign.launcher.gpus)
        ctx = _context(plan, records_only=True)
        folder = jobs_folder(plan.campaign.folder)
        folder.mkdir(parents=True, exist_ok=True)
        result = LaunchResult()
        queue = list(jobs)
        running: dict[int, tuple[Job, subprocess.Popen, object]] = {}
        try:
            while queue or running:
                for gpu in gpus:
                    if gpu in running or not queue:
                        continue
                    job = queue.pop(0)
                    job_file = folder / f"{job.id}.job.json"
                    log_path = job_file.with_suffix(".log")
                    write_job_file(job_file, job, ctx)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
                    out = log_path.open("w")
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "saip_bench.bench.runner", str(job_file)],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                    write_submitted(plan.campaign.folder, job, launcher="local", gpu=gpu, log=str(log_path))
                    say(f"{_label(job)}: started on GPU {gpu} (log {log_path})")
                    running[gpu] = (job, proc, out)
                for gpu, (job, proc, out) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    out.close()  # type: ignore[attr-defined]
                    del running[gpu]
                    (result.done if code == 0 else result.failed).append(job.id)
                    say(f"{job.id}: {'done' if code == 0 else f'failed (exit {code})'} on GPU {gpu}")
                time.sleep(0.2)
        finally:
            for _, proc, out in running.values():  # Ctrl-C: the children got it too; wait for their saves
                proc.wait()
                out.close()  # type: ignore[attr-defined]
            ingest(plan)
        return result


class TorchrunLauncher:
    """One job after another, each over ``launcher.nproc_per_node`` processes on this machine."""

    name = "torchrun"

    def launch(self, plan: Plan, jobs: list[Job], *, wait: bool, say: Say) -> LaunchResult:
        """Run every job now under ``torch.distributed.run --standalone``."""
        nproc = plan.campaign.launcher.nproc_per_node
        ctx = _context(plan, records_only=True)
        folder = jobs_folder(plan.campaign.folder)
        folder.mkdir(parents=True, exist_ok=True)
        result = LaunchResult()
        try:
            for n, job in enumerate(jobs, 1):
                job_file = folder / f"{job.id}.job.json"
                log_path = job_file.with_suffix(".log")
                write_job_file(job_file, job, ctx)
                argv = [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc-per-node={nproc}",
                    "-m",
                    "saip_bench.bench.runner",
                    str(job_file),
                ]
                write_submitted(
                    plan.campaign.folder, job, launcher="torchrun", nproc=nproc, log=str(log_path)
                )
                say(f"[{n}/{len(jobs)}] {_label(job)}: {nproc} processes (log {log_path})")
                with log_path.open("w") as out:
                    code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
                if code == 130:
                    raise Interrupted(f"{job.id}: interrupted; saip bench run again resumes it")
                (result.done if code == 0 else result.failed).append(job.id)
                say(f"[{n}/{len(jobs)}] {job.id}: {'done' if code == 0 else f'failed (exit {code})'}")
        finally:
            ingest(plan)
        return result


class SlurmJob(Requeueable):
    """A campaign job as a submitit callable: requeued on preemption / time-out, it resumes its run."""

    def __init__(self, job: Job, ctx: JobContext) -> None:
        super().__init__()
        self.job, self.ctx = job, ctx

    def __call__(self) -> str:  # type: ignore[override]
        """Run the job (on the Slurm node); its log lines, training steps included, go to the job's log."""
        from saip_bench.cli.common import setup_logging

        setup_logging(False)
        attempt = " (a rerun after a requeue: resuming)" if self.resuming else ""
        log.info("%s: %s%s", self.job.id, _label(self.job), attempt)
        return run_job(self.job, self.ctx)


class SlurmLauncher:
    """Every job in one submitit job array; with ``wait``, poll until each has left the queue."""

    name = "slurm"

    def launch(self, plan: Plan, jobs: list[Job], *, wait: bool, say: Say) -> LaunchResult:
        """Submit ``jobs``; nothing is written unless sbatch accepted them."""
        from saip_bench.launch.slurm import ACTIVE_STATES, job_states, make_executor, submit_array

        campaign = plan.campaign
        settings = campaign.launcher.slurm
        device = "cuda" if settings.gpus_per_node > 0 and campaign.device == "auto" else campaign.device
        ctx = _context(plan, records_only=True, device=device)
        folder = campaign.folder.resolve()
        executor = make_executor(folder / "slurm", settings, name=f"saip-{campaign.name}")
        submitted = submit_array(executor, [SlurmJob(job, ctx) for job in jobs])
        result = LaunchResult()
        for job, sjob in zip(jobs, submitted, strict=True):
            log_path = str(Path(sjob.paths.stderr).resolve())
            write_submitted(folder, job, launcher="slurm", slurm_id=str(sjob.job_id), log=log_path)
            result.submitted.append(job.id)
            result.slurm_ids[job.id] = str(sjob.job_id)
        if submitted:
            say(f"submitted {len(submitted)} jobs as Slurm array {str(submitted[0].job_id).split('_')[0]}")
        if not wait:
            return result
        pending = dict(result.slurm_ids)
        while pending:
            time.sleep(2.0)
            states = job_states(list(pending.values()))
            for job_id, slurm_id in list(pending.items()):
                if states.get(slurm_id, "") in ACTIVE_STATES:
                    continue
                del pending[job_id]
        ingest(plan)
        return result

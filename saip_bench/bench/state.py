"""What each job of a campaign is doing: small JSON files under ``<workspace>/campaigns/<name>/jobs/``.

Two files per job, each written by one side only and atomically, so a job that starts before its launcher
has written down the submission cannot be overwritten by it, and files on a network filesystem are never
seen half-written:

- ``<id>.submit.json``, by the launcher: how and when it was started (``launcher``, ``slurm_id``, ``log``);
- ``<id>.state.json``, by the job itself: ``running`` (with host, pid, Slurm ids, the attempt), then
  ``done``, ``failed`` (with the error line) or ``interrupted`` (it will resume).

:func:`job_statuses` turns them, the records and the scheduler's queue into ``done / running / failed /
pending`` per job: a record makes a job done whatever the files say.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saip_bench.bench.jobs import Job, Plan
from saip_bench.io import atomic_write_json
from saip_bench.launch.slurm import GONE, QUEUED_STATES, RUNNING_STATES
from saip_bench.results import utc_now_iso

STATUSES = ("done", "running", "failed", "pending")


def jobs_folder(campaign_folder: Path) -> Path:
    """Where a campaign keeps its jobs' files."""
    return Path(campaign_folder) / "jobs"


def write_submitted(campaign_folder: Path, job: Job, **info: Any) -> None:
    """The launcher's note of a job it started (``launcher=``, ``slurm_id=``, ``log=``...)."""
    data = {"job": job.id, "submitted_at": utc_now_iso(), **info}
    atomic_write_json(jobs_folder(campaign_folder) / f"{job.id}.submit.json", data)


def write_state(campaign_folder: Path, job_id: str, status: str, **info: Any) -> None:
    """The job's own note of where it is (written by the job's rank 0)."""
    data = {
        "job": job_id,
        "status": status,
        "updated_at": utc_now_iso(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **{k: v for k, v in os.environ.items() if k in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT")},
        **info,
    }
    atomic_write_json(jobs_folder(campaign_folder) / f"{job_id}.state.json", data)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class JobStatus:
    """One job's status for ``saip bench status``: one of :data:`STATUSES`, and the details behind it."""

    job: Job
    status: str
    detail: str = ""
    log: str | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_statuses(plan: Plan) -> list[JobStatus]:
    """Every job's status: recorded -> done; else from its state and submission files and, for Slurm jobs,
    the queue (``squeue``): a job the queue still holds is pending or running; one that left the queue
    without a record failed, and its log is named."""
    folder = jobs_folder(plan.campaign.folder)
    notes = {
        job.id: (_read(folder / f"{job.id}.submit.json"), _read(folder / f"{job.id}.state.json"))
        for job in plan.jobs
    }
    slurm_ids = [sub["slurm_id"] for sub, _ in notes.values() if sub.get("slurm_id")]
    queue: dict[str, str] = {}
    if slurm_ids:
        from saip_bench.launch.slurm import job_states

        queue = job_states(slurm_ids)
    here = socket.gethostname()
    out: list[JobStatus] = []
    for job in plan.jobs:
        sub, state = notes[job.id]
        log = sub.get("log") or state.get("log")
        status = state.get("status")
        slurm_id = str(sub["slurm_id"]) if sub.get("slurm_id") else None
        if job.id in plan.recorded:
            rec = plan.recorded[job.id]
            out.append(JobStatus(job, "done", f"{rec.primary_metric} {rec.primary_value:.2f}", log))
        elif slurm_id is not None:
            queued = queue.get(slurm_id, "")
            if queued in QUEUED_STATES:
                out.append(JobStatus(job, "pending", f"Slurm job {slurm_id} {queued.lower()}", log))
            elif queued in RUNNING_STATES:
                host = state.get("host", "?")
                out.append(JobStatus(job, "running", f"Slurm job {slurm_id} on {host}", log))
            elif status == "failed":
                out.append(JobStatus(job, "failed", f"Slurm job {slurm_id}: {state.get('error', '')}", log))
            else:  # it left the queue without a record: killed, out of time, out of memory...
                why = f" ({queued.lower()})" if queued and queued != GONE else ""
                out.append(JobStatus(job, "failed", f"Slurm job {slurm_id} ended{why} without a record", log))
        elif status == "failed":
            out.append(JobStatus(job, "failed", str(state.get("error", "failed")), log))
        elif status == "running":
            pid = int(state.get("pid", 0))
            if state.get("host") == here and pid and not _alive(pid):
                out.append(
                    JobStatus(job, "pending", "its process ended without a record; rerun resumes it", log)
                )
            else:
                out.append(JobStatus(job, "running", f"pid {pid} on {state.get('host', '?')}", log))
        elif status == "interrupted":
            out.append(JobStatus(job, "pending", "interrupted; rerun resumes it from its checkpoint", log))
        else:
            out.append(JobStatus(job, "pending", "", log))
    return out


def in_queue(plan: Plan) -> set[str]:
    """The ids of jobs running, or waiting in a Slurm queue: a rerun must not start them a second time."""
    return {
        s.job.id for s in job_statuses(plan) if s.status in ("pending", "running") and "Slurm job" in s.detail
    }

"""One campaign job, run where its launcher put it: in this process, a pinned subprocess, torchrun, Slurm.

The job is ``saip evaluate`` on one dataset and scale with the job's seed, always with ``resume``: a job
started again after any interruption (Ctrl-C, a requeue, a lost node) continues its run's last checkpoint,
and a job whose record exists is skipped. Jobs away from this process (subprocesses, Slurm) write record
files only (``records_only``); the commands run on the submitting machine ingest them.

``python -m saip_bench.bench.runner JOB_FILE`` is the entry point of subprocess and torchrun jobs; exit codes:
0 done or already recorded, 1 failed (the one error line is printed and kept in the job's state file), 130
interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saip_bench.bench.jobs import Job
from saip_bench.bench.state import write_state
from saip_bench.errors import Interrupted, SaipError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """Where a job runs: the campaign's folders, data, device, and whether it may write the SQLite store
    (``records_only``: True for jobs away from the submitting process, None to let ``saip evaluate`` decide:
    record files only on a network filesystem)."""

    campaign_folder: Path
    workspace: Path
    data_root: Path
    device: str = "auto"
    records_only: bool | None = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "campaign_folder": str(self.campaign_folder),
            "workspace": str(self.workspace),
            "data_root": str(self.data_root),
            "device": self.device,
            "records_only": self.records_only,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobContext:
        """Inverse of :meth:`to_dict`."""
        return cls(
            campaign_folder=Path(data["campaign_folder"]),
            workspace=Path(data["workspace"]),
            data_root=Path(data["data_root"]),
            device=str(data.get("device", "auto")),
            records_only=data.get("records_only", True),
        )


def run_job(job: Job, ctx: JobContext, **state: Any) -> str:
    """Run ``job`` and return its outcome's status (``"done"`` or ``"skipped"``: recorded already).

    Its state file says ``running`` while it runs, then ``done``, ``interrupted`` (the exception is raised
    again) or ``failed`` with the error's one line (raised again). ``state`` adds keys to it (the log path).
    """
    from saip_bench.engine.distributed import is_main
    from saip_bench.evaluate.dispatch import evaluate

    main = is_main()
    if main:
        write_state(ctx.campaign_folder, job.id, "running", **state)
    try:
        outcomes = evaluate(
            task=job.task,
            dataset=job.dataset,
            backbone=job.backbone,
            data_root=ctx.data_root,
            workspace=ctx.workspace,
            protocol=job.protocol,
            budget=job.budget,
            scales=list(job.scales),
            train_per_scale=job.train_per_scale,
            resume=True,
            device=ctx.device,
            overrides=list(job.overrides),
            records_only=ctx.records_only,
        )
    except Interrupted as err:
        if main:
            write_state(ctx.campaign_folder, job.id, "interrupted", error=str(err), **state)
        raise
    except Exception as err:
        if main:
            write_state(ctx.campaign_folder, job.id, "failed", error=_one_line(err), **state)
        raise
    statuses = {out.status for out in outcomes}
    status = "skipped" if statuses == {"skipped"} else "done" if statuses <= {"done", "skipped"} else "failed"
    if main:
        write_state(ctx.campaign_folder, job.id, "done", outcome=status, **state)
    return status


def _one_line(err: BaseException) -> str:
    text = str(err) if isinstance(err, SaipError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())[:500]


def write_job_file(path: Path, job: Job, ctx: JobContext) -> None:
    """The file a subprocess job reads (``python -m saip_bench.bench.runner PATH``)."""
    from saip_bench.io import atomic_write_json

    atomic_write_json(path, {"job": job.to_dict(), "context": ctx.to_dict()})


def main(argv: list[str] | None = None) -> int:
    """Entry point of a subprocess or torchrun job: run the job file given; the exit code says how it went."""
    from saip_bench.cli.common import INTERRUPTED_EXIT, setup_logging
    from saip_bench.engine.distributed import barrier, cleanup, init_distributed
    from saip_bench.evaluate.dispatch import resolve_device

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m saip_bench.bench.runner JOB_FILE", file=sys.stderr)
        return 2
    setup_logging(False)
    data = json.loads(Path(args[0]).read_text())
    job, ctx = Job.from_dict(data["job"]), JobContext.from_dict(data["context"])
    try:
        init_distributed(resolve_device(ctx.device))  # a process group under torchrun, nothing otherwise
        run_job(job, ctx, log=str(Path(args[0]).with_suffix(".log")))
        # Leave the group together: a gloo rank whose peer has already torn its group down can abort in
        # destroy_process_group ("terminate called without an active exception", seen once in CI at load 3)
        # and fail a job whose record is written. Only on success: after an error the peer may never arrive.
        barrier()
    except Interrupted as err:
        print(f"error: {job.id}: {err}", file=sys.stderr)
        return INTERRUPTED_EXIT
    except KeyboardInterrupt:
        print(f"error: {job.id}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except SaipError as err:
        print(f"error: {job.id}: {err}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

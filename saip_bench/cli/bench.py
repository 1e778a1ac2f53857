"""``saip bench plan | run | status CAMPAIGN``: a campaign of evaluations, from its file to its records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saip_bench.cli.common import console, user_errors
from saip_bench.errors import SaipError

if TYPE_CHECKING:
    from saip_bench.bench.jobs import Plan

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")

CampaignArg = Annotated[
    Path, typer.Argument(help="Campaign YAML (backbones, datasets, protocols, seeds, launcher).")
]
LauncherOpt = Annotated[
    str | None, typer.Option("--launcher", help="local | torchrun | slurm (default: the campaign's).")
]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", help="Workspace instead of the campaign's (results, runs, logs)."),
]
DataRootOpt = Annotated[Path | None, typer.Option("--data-root", help="Data root instead of the campaign's.")]
SeedsOpt = Annotated[
    int | None,
    typer.Option(
        "--seeds",
        help="Seeds 0..N-1 instead of the campaign's seeds list (N >= 1); the records of seeds already run "
        "are kept, so raising N runs only the new seeds.",
        show_default=False,
    ),
]


def _plan(
    campaign: Path, launcher: str | None, workspace: Path | None, data_root: Path | None, seeds: int | None
) -> Plan:
    from saip_bench.bench.campaign import load_campaign
    from saip_bench.bench.jobs import plan_campaign

    return plan_campaign(
        load_campaign(campaign, launcher=launcher, workspace=workspace, data_root=data_root, seeds=seeds)
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@user_errors
def plan(
    campaign: CampaignArg,
    launcher: LauncherOpt = None,
    workspace: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    seeds: SeedsOpt = None,
) -> None:
    """List a campaign's jobs, which are recorded already (and will be skipped), and what the rest costs.

    A study campaign whose data or pretrained backbones do not exist yet lists those stages instead."""
    from rich.table import Table

    from saip_bench.bench.campaign import load_campaign
    from saip_bench.cli.bench_study import pending_stages

    pending = pending_stages(
        load_campaign(campaign, launcher=launcher, workspace=workspace, data_root=data_root, seeds=seeds)
    )
    if pending:
        for stage in pending:
            console.print(f"to run first: {stage}", highlight=False, soft_wrap=True)
        console.print("the evaluation jobs are planned once these have run (saip bench run runs both)")
        return
    p = _plan(campaign, launcher, workspace, data_root, seeds)
    c = p.campaign
    table = Table(title=f"campaign {c.name}: {len(p.jobs)} jobs ({c.launcher.name})", title_justify="left")
    columns = ("backbone", "dataset", "protocol", "budget", "scale", "seed", "steps", "est. time", "status")
    for column in columns:
        table.add_column(column)
    for job in p.jobs:
        rec = p.recorded.get(job.id)
        steps = "?" if job.steps is None else f"{job.steps:,}"
        est = _duration(p.seconds[job.id]) if job.id in p.seconds else "?"
        status = f"[yellow]recorded[/] {rec.primary_metric} {rec.primary_value:.2f}" if rec else "to run"
        cells = (job.backbone_name, job.dataset, job.protocol, job.budget, job.scale_label, str(job.seed))
        table.add_row(*cells, steps, est, status)
    console.print(table)
    for note in p.notes:
        console.print(f"[dim]skipped: {note}[/]", highlight=False)
    todo = p.missing
    steps = [j.steps for j in todo if j.steps is not None]
    known = [p.seconds[j.id] for j in todo if j.id in p.seconds]
    cost = f"{sum(steps):,} optimizer steps" + (" (some unknown)" if len(steps) < len(todo) else "")
    if not todo:
        timing = ""
    elif known:
        timing = f"; about {_duration(sum(known))} for the {len(known)} with recorded runs of the same cell"
    else:
        timing = "; no recorded run of these cells to time them by"
    console.print(
        f"{len(todo)} to run, {len(p.recorded)} recorded: {cost}{timing}", highlight=False, soft_wrap=True
    )


@user_errors
def run(
    campaign: CampaignArg,
    launcher: LauncherOpt = None,
    workspace: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    seeds: SeedsOpt = None,
    wait: Annotated[
        bool,
        typer.Option(help="slurm: wait for every job to end, then show the status (local ones always do)."),
    ] = False,
) -> None:
    """Run a campaign's missing jobs; run again after any interruption, it runs or resumes only those.

    A study campaign (``synthetic_data`` / ``pretrain`` / ``report`` keys) first writes its data and runs its
    pretrainings, and after the jobs writes its report; every stage is timed."""
    from saip_bench.bench.campaign import load_campaign
    from saip_bench.bench.launchers import make_launcher
    from saip_bench.bench.state import in_queue
    from saip_bench.bench.study import StageClock
    from saip_bench.cli.bench_study import finish_study, prepare_study

    clock = StageClock()
    loaded = load_campaign(campaign, launcher=launcher, workspace=workspace, data_root=data_root, seeds=seeds)
    prepare_study(loaded, clock)
    p = _plan(campaign, launcher, workspace, data_root, seeds)
    busy = in_queue(p)
    todo = [job for job in p.missing if job.id not in busy]
    console.print(
        f"campaign {p.campaign.name}: {len(p.jobs)} jobs, {len(p.recorded)} recorded, "
        f"{len(busy)} queued or running already, {len(todo)} to start ({p.campaign.launcher.name})",
        highlight=False,
    )
    for note in p.notes:
        console.print(f"[dim]skipped: {note}[/]", highlight=False)
    if not todo:
        finish_study(p.campaign, clock)
        return
    p.campaign.folder.mkdir(parents=True, exist_ok=True)
    with clock.stage("evaluate", f"{len(todo)} jobs ({p.campaign.launcher.name})"):
        result = make_launcher(p).launch(
            p, todo, wait=wait, say=lambda text: console.print(text, highlight=False)
        )
    if result.submitted and not wait:
        more = f" --seeds {seeds}" if seeds is not None else ""
        console.print(f"follow it with: saip bench status {campaign}{more}", highlight=False)
        return
    counts = _show_status(_plan(campaign, launcher, workspace, data_root, seeds))
    finish_study(p.campaign, clock)
    if result.failed or counts["failed"]:
        raise typer.Exit(1)


def _show_status(p: Plan) -> dict[str, int]:
    from rich.table import Table

    from saip_bench.bench.state import STATUSES, job_statuses

    statuses = job_statuses(p)
    counts = {name: sum(s.status == name for s in statuses) for name in STATUSES}
    table = Table(title=f"campaign {p.campaign.name}", title_justify="left")
    for column in ("job", "status", "detail", "log"):
        table.add_column(column, overflow="fold")
    style = {"done": "green", "running": "cyan", "failed": "red", "pending": "yellow"}
    for s in statuses:
        table.add_row(
            s.job.id, f"[{style[s.status]}]{s.status}[/]", s.detail, s.log if s.status == "failed" else ""
        )
    console.print(table)
    console.print(", ".join(f"{counts[name]} {name}" for name in STATUSES), highlight=False)
    return counts


@user_errors
def status(
    campaign: CampaignArg,
    workspace: WorkspaceOpt = None,
    data_root: DataRootOpt = None,
    seeds: SeedsOpt = None,
) -> None:
    """Each job's state: done, running, failed (with its log) or pending; record files are ingested first."""
    from saip_bench.bench.campaign import load_campaign
    from saip_bench.bench.jobs import plan_campaign
    from saip_bench.bench.launchers import ingest

    c = load_campaign(campaign, workspace=workspace, data_root=data_root, seeds=seeds)
    p = plan_campaign(c)
    if c.workspace.is_dir():
        try:
            ingest(p)
        except (OSError, SaipError) as err:  # a read-only workspace: the status comes from the record files
            console.print(f"[yellow]warning:[/] record files not ingested ({err})", highlight=False)
    _show_status(p)


app.command("plan")(plan)
app.command("run")(run)
app.command("status")(status)

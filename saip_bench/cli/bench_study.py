"""The study stages of ``saip bench run`` (a campaign with ``synthetic_data`` / ``pretrain`` / ``report``):
the data and the pretrainings before the evaluation jobs, the report after them, each stage timed."""

from __future__ import annotations

from pathlib import Path

from saip_bench.bench.campaign import Campaign
from saip_bench.bench.study import StageClock, pretrain_study_run, write_study_data
from saip_bench.cli.common import console

#: What the report stage writes under ``<workspace>/<report folder>/``.
REPORT_FILES = ("table.md", "scales.md", "scales.png")


def _say(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def _evaluated_datasets(campaign: Campaign) -> list[str]:
    from saip_bench.datasets import DATASETS

    if campaign.datasets is not None:
        return list(campaign.datasets)
    names = [n for n in DATASETS.names() if DATASETS.get(n).protocols]
    return [n for n in names if campaign.tasks is None or DATASETS.get(n).task in campaign.tasks]


def prepare_study(campaign: Campaign, clock: StageClock) -> None:
    """Write the campaign's synthetic data, then run each of its pretrainings (skipping what exists)."""
    study = campaign.study
    if study is None:
        return
    if study.data is not None:
        with clock.stage("data", str(campaign.data_root)) as entry:
            written = write_study_data(
                study.data, campaign.data_root, _evaluated_datasets(campaign), say=_say
            )
            entry.detail = f"wrote {', '.join(written)}" if written else "all there already"
        _say(f"[bold]data[/]: {entry.detail} ({entry.seconds:.0f} s)")
    for run in study.pretrain:
        with clock.stage(f"pretrain {run.name}", run.recipe.name) as entry:
            _say(f"[bold]pretrain {run.name}[/]: {run.recipe.name} -> {run.run_dir(campaign.workspace)}")
            outcome = pretrain_study_run(run, campaign.data_root, campaign.workspace)
            entry.detail = f"{run.recipe.name}: {outcome}" + (
                " (export there already)" if outcome == "skipped" else ""
            )
        _say(f"[bold]pretrain {run.name}[/]: {entry.detail} ({entry.seconds:.0f} s)")


def write_study_report(campaign: Campaign, clock: StageClock) -> list[Path]:
    """``saip report`` of the workspace: the table (table.md), the metric against scale (scales.md) and its
    plot (scales.png; with two scales or more), under the campaign's report folder; return the files."""
    from saip_bench.cli.report import report

    study = campaign.study
    if study is None or study.report_folder is None:
        return []
    folder = campaign.workspace / study.report_folder
    table, scales, plot = (folder / name for name in REPORT_FILES)
    with clock.stage("report", str(folder)):
        folder.mkdir(parents=True, exist_ok=True)
        report(workspace=campaign.workspace, output=table)
        if len(campaign.scales) < 2:  # no curve to draw
            return [table]
        report(workspace=campaign.workspace, scales=True, output=scales, plot=[plot])
        report(workspace=campaign.workspace, scales=True)  # the scale table, on the terminal too
    return [table, scales, plot]


def show_stages(campaign: Campaign, clock: StageClock) -> None:
    """The stage times as a table, also written to ``<campaign folder>/stages.json``."""
    from rich.table import Table

    table = Table(title=f"campaign {campaign.name}: stage times", title_justify="left")
    for column in ("stage", "time", "detail"):
        table.add_column(column, overflow="fold")
    for stage in clock.stages:
        table.add_row(stage.name, f"{stage.seconds:.0f} s", stage.detail)
    table.add_row("[bold]total[/]", f"[bold]{clock.total / 60:.1f} min[/]", "")
    console.print(table)
    campaign.folder.mkdir(parents=True, exist_ok=True)
    clock.write(campaign.folder / "stages.json")


def finish_study(campaign: Campaign, clock: StageClock) -> None:
    """After the jobs of a study campaign: its report and the stage times (nothing for other campaigns)."""
    if campaign.study is None:
        return
    files = write_study_report(campaign, clock)
    show_stages(campaign, clock)
    for path in files:
        _say(f"wrote {path}")


def pending_stages(campaign: Campaign) -> list[str]:
    """The study stages ``saip bench run`` has still to run before it can plan the evaluation jobs: the data
    (a dataset folder missing) and each pretraining without its export."""
    from saip_bench.data_check import resolve_formats

    study = campaign.study
    if study is None:
        return []
    todo = []
    if study.data is not None:
        folders = {info.name: info.folder for info in resolve_formats("all")[0]}
        names = [n for n in ("lup", *_evaluated_datasets(campaign)) if study.data.size_of(n) and n in folders]
        missing = [n for n in names if not (campaign.data_root / folders[n]).is_dir()]
        if missing:
            todo.append(f"data: write synthetic {', '.join(missing)} to {campaign.data_root}")
    todo += [
        f"pretrain {run.name}: {run.recipe.name} -> {run.export(campaign.workspace)}"
        for run in study.pretrain
        if not run.export(campaign.workspace).is_file()
    ]
    return todo

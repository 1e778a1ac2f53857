"""``saip evaluate``: evaluate a backbone on a task's datasets and record the results in the workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from saip_bench.cli.common import BACKBONE_HELP, console, fail, progress_bar, user_errors
from saip_bench.errors import ConfigError


def parse_scales(text: str) -> list[float]:
    """``"0.5,0.75,1"`` -> ``[0.5, 0.75, 1.0]``; anything else is a ConfigError."""
    try:
        scales = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--scales {text!r}: expected comma-separated numbers, e.g. 0.5,0.75,1,1.25,1.5"
        ) from None
    if not scales or any(not (s > 0) for s in scales):
        raise ConfigError(f"--scales {text!r}: scales must be positive numbers")
    return list(dict.fromkeys(scales))


def recipe_overrides(args: list[str]) -> list[str]:
    """The extra command-line arguments as ``key=value`` recipe overrides; anything else is one red line.

    The command takes unknown arguments (Typer's ``allow_extra_args``), so a mistyped option lands here too
    and is named instead of being ignored.
    """
    for item in args:
        key, sep, _ = item.partition("=")
        if not sep or not key or key.startswith("-"):
            raise fail(
                f"unexpected argument {item!r}: recipe overrides are key=value (e.g. train.epochs=1); "
                "see saip evaluate --help"
            )
    return list(args)


def _launch_torchrun(nproc_per_node: int) -> None:
    """This same command on ``nproc_per_node`` processes under torchrun; exits as they did."""
    from saip_bench.launch.torchrun import run_torchrun, torchrun_argv

    console.print(f"launching {nproc_per_node} processes under torchrun", highlight=False)
    result = run_torchrun(torchrun_argv("evaluate", sys.argv[1:], nproc_per_node=nproc_per_node))
    if result.message:
        fail(result.message)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _join_process_group(ctx: typer.Context, device: str) -> str:
    """In a torchrun worker: join the process group (gloo on CPU, nccl on ``cuda:LOCAL_RANK``) and leave it
    when the command ends; returns this process's device."""
    from saip_bench.engine.distributed import cleanup, init_distributed
    from saip_bench.evaluate.dispatch import resolve_device

    info = init_distributed(resolve_device(device))
    ctx.call_on_close(cleanup)
    return str(info.device)


@user_errors
def evaluate(
    ctx: typer.Context,
    *,
    task: Annotated[
        str,
        typer.Option(
            help="Task, e.g. [bold]reid[/], [bold]attribute[/], or [bold]all[/] (every task's datasets "
            "found under --data-root); an unknown name lists the valid ones."
        ),
    ],
    backbone: Annotated[
        list[str], typer.Option(help=BACKBONE_HELP + " Repeat it to evaluate several backbones.")
    ],
    data_root: Annotated[
        Path, typer.Option(help="Folder holding the datasets (what `saip data check` scans).")
    ],
    dataset: Annotated[str, typer.Option(help="A dataset of the task, or [bold]all[/].")] = "all",
    protocol: Annotated[
        str | None,
        typer.Option(help="finetune | linear | frozen (default: the dataset's first protocol, finetune)."),
    ] = None,
    budget: Annotated[str, typer.Option(help="full | short | smoke (one epoch of a few steps).")] = "full",
    workspace: Annotated[
        Path | None,
        typer.Option(help="Workspace (results.sqlite, runs/); default $SAIP_WORKSPACE or ./saip-workspace."),
    ] = None,
    scales: Annotated[
        str,
        typer.Option(
            help="Multiples of the recipe's input size, e.g. 0.5,1,1.5: one model trained at x1 and "
            "evaluated at each (the scale probe), one record each."
        ),
    ] = "1",
    train_per_scale: Annotated[
        bool,
        typer.Option(help="With --scales: train a model at each scale's size instead (one run per scale)."),
    ] = False,
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe YAML instead of the dataset's default (e.g. a 384x128 one).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Rerun even if already recorded; start an unfinished run over (its last.pt is removed)."
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue an interrupted run from its last.pt, exactly (same batches, same RNG)."),
    ] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    nproc_per_node: Annotated[
        int,
        typer.Option(
            "--nproc-per-node",
            help="Processes on this machine (one per GPU); > 1 launches torchrun itself, the same results.",
        ),
    ] = 1,
) -> None:
    """Evaluate a backbone on a task's datasets; every finished evaluation is recorded in the workspace.

    Extra [bold]key=value[/] arguments override the recipe, applied last:
    e.g. [bold]train.epochs=1 eval.batch_size=8[/]. The valid keys are the task's
    (configs/evaluate/defaults/TASK.yaml) and the engine's train section.
    """
    overrides = recipe_overrides(list(ctx.args))
    if nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        _launch_torchrun(nproc_per_node)
        return
    if "WORLD_SIZE" in os.environ:  # a torchrun worker: in the process group before any collective
        device = _join_process_group(ctx, device)
    is_main = int(os.environ.get("RANK", "0")) == 0
    from rich.table import Table

    from saip_bench.evaluate.dispatch import evaluate as run_evaluation
    from saip_bench.results import default_workspace

    scale_list = parse_scales(scales)
    ws = workspace if workspace is not None else default_workspace()
    with progress_bar() as bar:
        ids: dict[str, object] = {}

        def progress(description: str, done: int, total: int) -> None:
            key = description.split(" ")[0]
            if key not in ids:
                ids[key] = bar.add_task(description, total=total or None)
            bar.update(ids[key], description=description, completed=done, total=total or None)  # type: ignore[arg-type]

        outcomes = run_evaluation(
            task=task,
            dataset=dataset,
            backbone=backbone,
            data_root=data_root,
            workspace=ws,
            protocol=protocol,
            budget=budget,
            scales=scale_list,
            train_per_scale=train_per_scale,
            force=force,
            resume=resume,
            device=device,
            recipe=recipe,
            overrides=overrides,
            progress=progress,
        )
    several = len(set(backbone)) > 1
    if not is_main:  # every rank has the outcomes; one prints them
        return
    table = Table(title=f"saip evaluate: {task} ({budget})", title_justify="left")
    for column in (("backbone",) if several else ()) + (
        "dataset",
        "protocol",
        "scale",
        "status",
        "metrics",
        "time",
    ):
        table.add_column(column)
    for out in outcomes:
        rec = out.record
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in rec.metrics.items()) if rec else out.message
        time_s = f"{rec.duration_s:.1f} s" if rec else ""
        style = {"done": "green", "skipped": "yellow", "missing": "dim", "n/a": "dim"}.get(out.status, "")
        first = (out.backbone,) if several else ()
        table.add_row(
            *first, out.dataset, out.protocol, f"{out.scale:g}", f"[{style}]{out.status}[/]", metrics, time_s
        )
    console.print(table)
    console.print(f"results: {Path(ws) / 'results.sqlite'}", highlight=False)


def _main() -> None:
    """Entry point of each torchrun worker (``python -m saip_bench.cli.evaluate ...``)."""
    from saip_bench.launch.torchrun import worker_main

    worker_main(evaluate)


if __name__ == "__main__":
    _main()

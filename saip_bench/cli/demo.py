"""``saip demo``: synthetic data -> pretraining (every method) -> evaluation (every adapter) -> report."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from saip_bench.cli.common import console, user_errors


@user_errors
def demo(
    *,
    workspace: Annotated[
        Path | None,
        typer.Option(help="Workspace for data, runs and results (default: a new temporary folder)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Pretraining steps per method.", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    device: Annotated[str, typer.Option(help="Evaluation device: auto, cpu, cuda or cuda:N.")] = "auto",
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Evaluate only this dataset (repeatable; default: every dataset with an adapter)."),
    ] = None,
) -> None:
    """Run the whole pipeline briefly on built-in synthetic data and print the report."""
    from saip_bench.cli.report import print_report_table
    from saip_bench.demo import run_demo

    # The demo shows its stages; per-run library INFO lines (checkpoint loading, probes) only with --verbose.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("saip_bench").setLevel(logging.WARNING)

    if dataset:
        from saip_bench.evaluate.protocols import PROTOCOLS

        for name in dataset:
            PROTOCOLS.get(name)  # an unknown name fails here, before anything is written
    ws = workspace or Path(tempfile.mkdtemp(prefix="saip-demo-"))
    console.print(f"[bold]saip demo[/] in {ws}")
    with console.status("starting") as status:

        def on_stage(name: str, detail: str) -> None:
            status.update(f"[bold]{name}[/]: {detail}")
            console.log(f"{name}: {detail}")

        result = run_demo(
            ws,
            seed=seed,
            pretrain_steps=steps,
            device=device,
            datasets=dataset or None,
            on_stage=on_stage,
        )
    if result.table is not None:
        print_report_table(result.table)
    for line in result.skipped:
        console.print(f"[yellow]{line}[/]")
    console.print(
        f"demo finished in {result.seconds:.0f} s; workspace {ws}\n"
        f"see it again with: saip report --workspace {ws}"
    )

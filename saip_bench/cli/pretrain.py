"""`saip pretrain`: SAIP (or MAE / DINO) pretraining of a lightweight backbone, for `saip evaluate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from saip_bench.cli.common import INTERRUPTED_EXIT, console, draws_bars, fail, user_errors


def _torchrun_argv(nproc: int) -> list[str]:
    """This same command under torchrun with ``nproc`` processes (minus the --nproc-per-node option)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--nproc-per-node", "--nproc_per_node"):
            skip = True
            continue
        if arg.startswith(("--nproc-per-node=", "--nproc_per_node=")):
            continue
        args.append(arg)
    if args and args[0] == "pretrain":
        args = args[1:]
    else:  # options before the command name (e.g. -v) are dropped by the child app
        args = args[args.index("pretrain") + 1 :] if "pretrain" in args else args
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "saip_bench.cli.pretrain",
        *args,
    ]


@user_errors
def pretrain(
    ctx: typer.Context,
    *,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Recipe YAML (a path, or a shipped name such as smoke_cpu). Default: saip_1gpu, or with "
            "--resume the run's own resolved config.yaml.",
        ),
    ] = None,
    data: Annotated[Path, typer.Option("--data", help="Folder of person crops (LUP format).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (checkpoint, logs, export).")],
    method: Annotated[str | None, typer.Option("--method", help="saip | mae | dino.")] = None,
    objectives: Annotated[
        str | None, typer.Option("--objectives", help="Keep only these terms, e.g. csm,csr (ablations).")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimiser steps (overrides epochs).")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per process per micro-step.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN_DIR's checkpoint exactly.")] = False,
    export: Annotated[
        str | None, typer.Option("--export", help="Which weights to export: teacher (default) or student.")
    ] = None,
    nproc_per_node: Annotated[
        int, typer.Option("--nproc-per-node", help="Processes on this machine; > 1 launches torchrun itself.")
    ] = 1,
) -> None:
    """Pretrain a backbone; extra [bold]key=value[/] arguments override the config (e.g. train.blr=1e-4)."""
    overrides = list(ctx.args)
    for item in overrides:
        if "=" not in item:
            raise fail(f"unexpected argument {item!r}: config overrides are key=value")
    if export is not None and export not in ("teacher", "student"):
        raise fail(f"--export {export}: expected teacher or student")
    if nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        console.print(f"launching {nproc_per_node} processes under torchrun")
        code = subprocess.call(_torchrun_argv(nproc_per_node))
        if code != 0:
            raise typer.Exit(code)
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from saip_bench.pretrain.engine.run import build_config, run_pretraining

    if config is None:
        saved = out / "config.yaml"
        config = str(saved) if resume and saved.is_file() else "saip_1gpu"
    cfg = build_config(
        config,
        method=method,
        objectives=objectives,
        steps=steps,
        batch_size=batch_size,
        export=export,
        overrides=overrides,
    )
    main = int(os.environ.get("RANK", "0")) == 0
    progress = Progress(
        TextColumn("[bold]pretrain[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[text]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not main or not draws_bars(),  # into a file the step lines of the log take its place
        transient=False,
    )
    with progress:
        task = progress.add_task("pretrain", total=None, text="")

        def on_step(info) -> None:
            progress.update(
                task,
                completed=info.step,
                total=info.total_steps,
                text=f"loss {info.losses['loss']:.4f}  lr {info.lr:.2e}  {info.images_per_s:.1f} img/s",
            )

        try:
            result = run_pretraining(cfg, data, out, resume=resume, on_step=on_step)
        except KeyboardInterrupt:  # a second Ctrl-C, or one before the training loop took over the signal
            fail(f"{out}: interrupted; the run's checkpoint (if any) is from its last save")
            raise typer.Exit(INTERRUPTED_EXIT) from None
    if main:
        first, last = result.first_losses.get("loss"), result.last_losses.get("loss")
        losses = f" loss {first:.4f} -> {last:.4f}" if first is not None and last is not None else ""
        console.print(
            f"{result.method} ({','.join(result.terms)}): {result.steps} steps{losses}; "
            f"backbone: {result.export_path}",
            soft_wrap=True,
        )


def _main() -> None:
    """Entry point of each torchrun child process (``python -m saip_bench.cli.pretrain ...``)."""
    from saip_bench.cli.common import setup_logging

    setup_logging(False)
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(pretrain)
    app()


if __name__ == "__main__":
    _main()

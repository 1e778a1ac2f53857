"""`saip pretrain`: SAIP (or MAE / DINO) pretraining of a lightweight backbone, for `saip evaluate`."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saip_bench.cli.common import INTERRUPTED_EXIT, console, draws_bars, fail, user_errors
from saip_bench.io import undo_on_error
from saip_bench.launch.rendezvous import DEFAULT_TIMEOUT_S, Nodes, preflight

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from saip_bench.pretrain.engine.run import PretrainResult

#: The launcher's options, left out of the torchrun workers' arguments.
LAUNCHER_OPTIONS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-timeout")


def _launch_torchrun(nproc_per_node: int, nodes: Nodes) -> None:
    """This same command on ``nproc_per_node`` processes here (one node of ``nodes``); exits as they did."""
    from saip_bench.launch.torchrun import run_torchrun, torchrun_argv

    preflight(nodes)  # one line, before anything is started or written
    where = f" (node {nodes.rank} of {nodes.count}, rendezvous {nodes.endpoint})" if nodes.multi else ""
    count = f"{nproc_per_node} process" + ("es" if nproc_per_node > 1 else "")
    console.print(f"launching {count} under torchrun{where}", highlight=False)
    argv = torchrun_argv(
        "pretrain", sys.argv[1:], nproc_per_node=nproc_per_node, nodes=nodes, strip=LAUNCHER_OPTIONS
    )
    result = run_torchrun(argv)
    if result.message:
        fail(result.message)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


#: The --help sections of the launchers' options.
NODES = "Several machines, local launcher (torchrun)"
SLURM = "Slurm (--launcher slurm)"


@dataclass(frozen=True)
class SlurmOptions:
    """The Slurm options of ``saip pretrain`` as given (the defaults: none given)."""

    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    wait: bool = False

    def first_set(self) -> str:
        """The option name of the first one that differs from its default."""
        default = SlurmOptions()
        names = {"partition": "slurm-partition", "account": "slurm-account", "qos": "slurm-qos"}
        for item in fields(self):
            if getattr(self, item.name) != getattr(default, item.name):
                return "--" + names.get(item.name, item.name.replace("_", "-"))
        return ""


def _submit_to_slurm(
    cfg: DictConfig,
    data: Path,
    out: Path,
    *,
    resume: bool,
    nnodes: int,
    nproc_per_node: int,
    opts: SlurmOptions,
) -> None:
    """Submit the pretraining as one Slurm job (one task per GPU, or ``nproc_per_node`` per node on CPU)."""
    from saip_bench.launch.slurm import SlurmSettings, make_executor, require_submitit, submit, wait_result
    from saip_bench.pretrain.engine.job import PretrainJob
    from saip_bench.pretrain.engine.run import check_run_dir

    if opts.gpus_per_node and nproc_per_node not in (1, opts.gpus_per_node):
        raise fail(f"--nproc-per-node {nproc_per_node}: with --gpus-per-node the job runs one task per GPU")
    if not data.is_dir():
        raise fail(f"{data}: no such folder of pretraining images")
    check_run_dir(out, resume=resume)  # refused here rather than in the job's log
    settings = SlurmSettings(
        partition=opts.partition,
        account=opts.account,
        qos=opts.qos,
        nodes=nnodes,
        gpus_per_node=opts.gpus_per_node,
        tasks_per_node=opts.gpus_per_node or nproc_per_node,
        cpus_per_task=opts.cpus_per_task,
        mem_gb=opts.mem_gb,
        time_min=opts.time_min,
    )
    with undo_on_error(out):  # sbatch refused: a new --out goes
        executor = make_executor(out / "slurm", settings, name=f"saip-pretrain-{out.name}")
        # Absolute paths: the job may start in another folder (sbatch --chdir, a requeue).
        job = submit(executor, PretrainJob(cfg, data.resolve(), out.resolve(), resume=resume))
    tasks = settings.nodes * settings.tasks_per_node
    console.print(
        f"submitted Slurm job {job.job_id}: {tasks} task(s) on {settings.nodes} node(s); "
        f"log: {job.paths.stdout}",
        highlight=False,
        soft_wrap=True,
    )
    if not opts.wait:
        return
    submitit = require_submitit()
    try:
        result = wait_result(job.task(0))  # rank 0's result (a job of several tasks has one per task)
    except submitit.core.utils.FailedJobError as err:
        raise fail(
            f"Slurm job {job.job_id} failed: {_job_error(str(err))}; log: {job.paths.stderr}"
        ) from None
    _print_result(result)


def _job_error(trace: str) -> str:
    """The one line that says why a job failed: its SaipError's message, else the traceback's last line."""
    lines = [line.strip() for line in trace.splitlines() if line.strip() and not line.startswith("-" * 10)]
    for line in reversed(lines):
        kind, sep, message = line.partition(": ")
        if sep and kind.startswith("saip_bench.errors."):
            return message
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    return (errors or lines or ["no message"])[-1]


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
    nnodes: Annotated[
        int,
        typer.Option(
            "--nnodes",
            help="Machines in the run. Local: start the same command on each, with its own --node-rank "
            "and the same --rdzv-endpoint; with --launcher slurm: the job's nodes.",
        ),
    ] = 1,
    node_rank: Annotated[
        int,
        typer.Option("--node-rank", help="This machine's rank, 0..nnodes-1.", rich_help_panel=NODES),
    ] = 0,
    rdzv_endpoint: Annotated[
        str | None,
        typer.Option(
            "--rdzv-endpoint", help="HOST:PORT of node 0, where the nodes meet.", rich_help_panel=NODES
        ),
    ] = None,
    rdzv_timeout: Annotated[
        float,
        typer.Option(
            "--rdzv-timeout",
            help="Seconds to wait for node 0 to answer and for every node to join.",
            rich_help_panel=NODES,
        ),
    ] = DEFAULT_TIMEOUT_S,
    launcher: Annotated[
        str,
        typer.Option(
            "--launcher",
            help="local (this machine; torchrun for > 1 process) or slurm (submit a job through submitit: "
            "--nnodes nodes, one task per GPU, or --nproc-per-node tasks per node on CPU).",
        ),
    ] = "local",
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", help="GPUs per node, one task each.", rich_help_panel=SLURM)
    ] = 0,
    cpus_per_task: Annotated[
        int, typer.Option("--cpus-per-task", help="CPU cores per task (data loading).", rich_help_panel=SLURM)
    ] = 1,
    mem_gb: Annotated[
        float | None,
        typer.Option("--mem-gb", help="Memory per node (default: the partition's).", rich_help_panel=SLURM),
    ] = None,
    time_min: Annotated[
        int,
        typer.Option(
            "--time-min",
            help="Time limit in minutes; near it the job saves, requeues and resumes.",
            rich_help_panel=SLURM,
        ),
    ] = 60,
    slurm_partition: Annotated[
        str | None,
        typer.Option("--slurm-partition", help="Partition (default: the cluster's).", rich_help_panel=SLURM),
    ] = None,
    slurm_account: Annotated[
        str | None, typer.Option("--slurm-account", help="Account to charge.", rich_help_panel=SLURM)
    ] = None,
    slurm_qos: Annotated[str | None, typer.Option("--slurm-qos", help="QOS.", rich_help_panel=SLURM)] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait for the job and print its result (default: print the job id and its log, return).",
            rich_help_panel=SLURM,
        ),
    ] = False,
) -> None:
    """Pretrain a backbone; extra [bold]key=value[/] arguments override the config (e.g. train.blr=1e-4)."""
    overrides = list(ctx.args)
    for item in overrides:
        if "=" not in item:
            raise fail(f"unexpected argument {item!r}: config overrides are key=value")
    if export is not None and export not in ("teacher", "student"):
        raise fail(f"--export {export}: expected teacher or student")
    if launcher not in ("local", "slurm"):
        raise fail(f"--launcher {launcher}: expected local or slurm")
    slurm = SlurmOptions(
        gpus_per_node, cpus_per_task, mem_gb, time_min, slurm_partition, slurm_account, slurm_qos, wait
    )
    if launcher == "local" and slurm != SlurmOptions():
        raise fail(f"{slurm.first_set()}: a Slurm option; add --launcher slurm")
    nodes = Nodes(count=nnodes, rank=node_rank, endpoint=rdzv_endpoint, timeout_s=rdzv_timeout)
    if launcher == "slurm" and (node_rank or rdzv_endpoint):
        raise fail("--node-rank / --rdzv-endpoint: Slurm places the ranks itself; leave them out")
    local_launch = nproc_per_node > 1 or nodes.multi or node_rank
    if launcher == "local" and local_launch and "WORLD_SIZE" not in os.environ:
        _launch_torchrun(nproc_per_node, nodes)
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
    if launcher == "slurm":
        _submit_to_slurm(
            cfg, data, out, resume=resume, nnodes=nnodes, nproc_per_node=nproc_per_node, opts=slurm
        )
        return
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
        _print_result(result)


def _print_result(result: PretrainResult) -> None:
    first, last = result.first_losses.get("loss"), result.last_losses.get("loss")
    losses = f" loss {first:.4f} -> {last:.4f}" if first is not None and last is not None else ""
    console.print(
        f"{result.method} ({','.join(result.terms)}): {result.steps} steps{losses}; "
        f"backbone: {result.export_path}",
        soft_wrap=True,
    )


def _main() -> None:
    """Entry point of each torchrun child process (``python -m saip_bench.cli.pretrain ...``)."""
    from saip_bench.launch.torchrun import worker_main

    worker_main(pretrain)


if __name__ == "__main__":
    _main()

"""``saip demo``: the whole pipeline on built-in synthetic data, briefly, in one workspace.

Writes every synthetic format that exists, pretrains a backbone with every pretraining method for a few
steps, evaluates those backbones and an untrained reference row on every dataset that has a task adapter
(with the fast probe protocols at smoke budget), and returns the report table. Every stage is idempotent:
rerunning the demo on the same workspace reuses its data and exports, and the results store skips
evaluations it already has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from saip_bench.report.table import ReportTable

log = logging.getLogger(__name__)

#: Pretraining methods the demo runs, in order.
DEMO_METHODS: tuple[str, ...] = ("saip", "mae", "dino")
#: The untrained reference row.
REFERENCE_BACKBONE = "random:saip_vit_tiny_patch16"
#: Synthetic sizes (ids, images): small enough for minutes on 2 cores, large enough for a learning signal.
#: Most of an evaluation is backbone forwards, one per image (two for flip-averaged re-ID features): 96
#: images per dataset (6 per identity) instead of 192 took the whole demo from 532 to 356 CPU seconds
#: (fixed head steps and the detectors' 16 train / 12 test images do not shrink); every smoke recipe still
#: finds what it reads.
LUP_SIZE = (64, 256)
EVAL_SIZE = (16, 96)
#: Probe protocols first: they need no fine-tuning and take seconds on a CPU.
PROBE_PROTOCOLS: tuple[str, ...] = ("frozen", "linear")
#: Tasks whose only protocol fine-tunes a whole detector (tens of seconds per run on a CPU): the demo
#: evaluates them with the untrained reference row and the first method's export only.
FINETUNE_ONLY_BACKBONES = 2

#: ``stage(name, detail)``: called when the demo enters a stage, for the CLI's display.
StageFn = Callable[[str, str], None]


@dataclass
class DemoStage:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class DemoResult:
    workspace: Path
    stages: list[DemoStage] = field(default_factory=list)
    backbones: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "dataset: why" for datasets the demo could not run
    table: ReportTable | None = None
    seconds: float = 0.0


def demo_protocol(protocols: tuple[str, ...]) -> str:
    """The protocol the demo runs for a dataset: its fast probe if it has one, else its default."""
    return next((p for p in PROBE_PROTOCOLS if p in protocols), protocols[0])


def write_demo_data(data_root: Path, *, seed: int, datasets: Sequence[str] | None = None) -> list[str]:
    """Write every supported synthetic format (or the LUP crops and ``datasets``) under ``data_root``,
    skipping folders already there."""
    from saip_bench.data_check import resolve_formats, write_synth_dataset

    supported, _ = resolve_formats("all")
    written = []
    for info in supported:
        if datasets is not None and info.name not in ("lup", *datasets):
            continue
        if (data_root / info.folder).is_dir():
            continue
        ids, images = LUP_SIZE if info.name == "lup" else EVAL_SIZE
        write_synth_dataset(info, data_root, ids=ids, images=images, seed=seed)
        written.append(info.name)
    return written


def pretrain_demo_backbones(
    data_root: Path, runs: Path, *, steps: int, methods: tuple[str, ...], on_stage: StageFn
) -> list[Path]:
    """Pretrain with each method on the synthetic LUP crops (CPU smoke recipe); return the exports."""
    from saip_bench.configs import config_path
    from saip_bench.datasets import LUP
    from saip_bench.pretrain.engine.run import build_config, run_pretraining

    exports = []
    for method in methods:
        out = runs / "pretrain" / method
        export = out / "backbone.safetensors"
        if not export.is_file():
            on_stage("pretrain", f"{method}, {steps} steps")
            cfg = build_config(config_path("pretrain/smoke_cpu.yaml"), method=method, steps=steps)
            result = run_pretraining(cfg, data_root / LUP.folder, out)
            log.info(
                "%s: loss %.3f -> %.3f over %d steps",
                method,
                result.first_losses.get("loss", float("nan")),
                result.last_losses.get("loss", float("nan")),
                result.steps,
            )
        exports.append(export)
    return exports


def run_demo(
    workspace: str | Path,
    *,
    seed: int = 0,
    pretrain_steps: int = 20,
    methods: tuple[str, ...] = DEMO_METHODS,
    device: str = "auto",
    datasets: Sequence[str] | None = None,
    on_stage: StageFn | None = None,
) -> DemoResult:
    """Run the demo in ``workspace`` (created if missing) and return the report table.

    Args:
        workspace: holds ``data/``, ``runs/`` and ``results.sqlite``; ``saip report --workspace`` reads it.
        seed: seed of the synthetic data.
        pretrain_steps: optimiser steps per pretraining method.
        methods: pretraining methods to run.
        device: evaluation device (``auto`` picks CUDA when present).
        datasets: evaluate only these datasets (default: every dataset with a task adapter).
        on_stage: progress callback ``(stage, detail)``.
    """
    from saip_bench.datasets import DATASETS
    from saip_bench.evaluate.dispatch import evaluate
    from saip_bench.mm.available import missing_mm
    from saip_bench.report.table import build_report_table
    from saip_bench.results import open_workspace_store

    stage = on_stage or (lambda name, detail: None)
    ws = Path(workspace)
    data_root, runs = ws / "data", ws / "runs"
    result = DemoResult(workspace=ws)
    start = time.perf_counter()

    def timed(name: str, detail: str, func: Callable[[], object]) -> object:
        stage(name, detail)
        t0 = time.perf_counter()
        value = func()
        result.stages.append(DemoStage(name, time.perf_counter() - t0, detail))
        return value

    timed(
        "data",
        f"synthetic datasets in {data_root}",
        lambda: write_demo_data(data_root, seed=seed, datasets=datasets),
    )
    exports = timed(
        "pretrain",
        ", ".join(methods),
        lambda: pretrain_demo_backbones(
            data_root, runs, steps=pretrain_steps, methods=methods, on_stage=stage
        ),
    )
    result.backbones = [REFERENCE_BACKBONE, *(str(p) for p in exports)]
    for name, spec in DATASETS.items():
        if datasets is not None and name not in datasets:
            continue
        missing = missing_mm(*spec.needs) if spec.needs else []
        if missing:
            why = f"{name}: skipped, {', '.join(missing)} not installed (README, 'The OpenMMLab stack')"
            result.skipped.append(why)
            stage("skip", why)
            continue
        protocol = demo_protocol(spec.protocols)
        probe = protocol in PROBE_PROTOCOLS
        backbones = result.backbones if probe else result.backbones[:FINETUNE_ONLY_BACKBONES]
        for backbone in backbones:
            label = f"{name} ({protocol}) <- {Path(backbone).parent.name or backbone}"
            timed(
                "evaluate",
                label,
                lambda name=name, spec=spec, protocol=protocol, backbone=backbone: evaluate(
                    task=spec.task,
                    dataset=name,
                    backbone=backbone,
                    data_root=data_root,
                    workspace=ws,
                    protocol=protocol,
                    budget="smoke",
                    device=device,
                ),
            )
    result.table = build_report_table(open_workspace_store(ws).query())
    result.seconds = time.perf_counter() - start
    return result

"""benchmarks/pretrain_data.py: it prints the rates, the load average and where the time goes."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_data_benchmark_prints_rates_load_and_stages(capsys):
    spec = importlib.util.spec_from_file_location("pretrain_data_benchmark", BENCHMARKS / "pretrain_data.py")
    bench = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(bench)  # in this process: a fresh one would spend its time importing torch
        args = ["--recipe", "smoke_cpu", "--images", "16", "--seconds", "0.5", "--warmup-seconds", "0.1"]
        assert bench.main([*args, "--worker-seconds", "0.5", "--profile-seconds", "0.3", "--per-sample"]) == 0
        first = capsys.readouterr().out
        compare = [
            "--worker-seconds",
            "0.6",
            "--worker-rounds",
            "2",
            "--profile-seconds",
            "0",
            "--compare-output",
        ]
        assert bench.main([*args, *compare]) == 0
        second = capsys.readouterr().out
        assert bench.main([*args, "--worker-seconds", "0.5", "--profile-seconds", "0", "--crops"]) == 0
        crops = capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop(spec.name, None)
    rates = re.findall(r"  (.+?): [\d.]+ images/s wall, ([\d.]+) images/s per core of CPU time", first)
    assert [name.split(" (")[0] for name, _ in rates] == ["loader", "per sample", "in a DataLoader worker"]
    assert all(float(rate) > 0 for _, rate in rates)
    assert "load average (1, 5, 15 min) before:" in first
    # the recipe's views are quantised: uint8 through the worker's shared memory, masks too
    assert "globals (2, 3, 64, 32) uint8" in first and "masks (2, 64, 64) uint8" in first
    faults = dict(re.findall(r"  (.+?): .*?, (\d+) page faults per image", second))
    assert set(faults) == {
        "loader (__getitems__ + collate)",
        "loader, views.output=float32",
        "in a DataLoader worker (batch in shared memory)",
        "in a DataLoader worker, views.output=float32",
    }
    # a float32 batch is 4x the bytes of a uint8 one: its fresh shared-memory pages cost more page faults
    assert int(faults["in a DataLoader worker, views.output=float32"]) > int(
        faults["in a DataLoader worker (batch in shared memory)"]
    )
    assert len(re.findall(r"x by CPU time per image \(alternating\)", second)) == 2
    for stage in (
        "decode",
        "crop + resize",
        "augment: Gaussian blur",
        "augment: hue",
        "round to uint8",
        "composite",
    ):
        assert re.search(rf"[\d.]+ ms +[\d.]+%  {re.escape(stage)}", first), stage
    # views.output=crops: the worker's half side by side with the finished views, and the device half timed
    rates = dict(re.findall(r"  (.+?): [\d.]+ images/s wall, ([\d.]+) images/s per core of CPU time", crops))
    assert {"loader, views.output=crops", "in a DataLoader worker, views.output=crops"} <= set(rates)
    assert len(re.findall(r"views.output=crops / .*?: [\d.]+x by CPU time per image", crops)) == 2
    device = re.search(r"device half \(device_views.finish_views\) on cpu, .*?: ([\d.]+) ms per image", crops)
    assert device and float(device.group(1)) > 0

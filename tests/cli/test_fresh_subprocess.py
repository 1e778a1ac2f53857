"""Every ``saip`` command in a fresh interpreter, as a user runs it from a shell.

The in-process CLI tests (``CliRunner``) import the command modules after the rest of the suite has
imported much of ``saip_bench``, so an import cycle or a missing import that only shows in a clean process
(``saip convert`` once crashed on every input that way) passes them. Here each call is a new process: the
``saip`` console script installed next to ``sys.executable`` (``python -m saip_bench.cli.app`` where it is
not installed), run in a scratch folder with one thread and no ``SAIP_WORKSPACE``.

Every command's ``--help``, then one real, small call of each: data synth, data check, pretrain, evaluate,
report, convert and bench plan (``saip demo`` from a fresh shell: ``tests/test_demo.py``). The calls that
train are marked slow (still part of CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("saip")
SAIP = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "saip_bench.cli.app"]

# (command words, a phrase its help must show)
HELP = [
    ((), "Pretrain lightweight human-centric backbones"),
    (("pretrain",), "[KEY=VALUE]"),
    (("evaluate",), "[KEY=VALUE]"),
    (("report",), "--format"),
    (("demo",), "--dataset"),
    (("data",), "synth"),
    (("data", "synth"), "--overwrite"),
    (("data", "check"), "--root"),
    (("convert",), "--branch"),
    (("bench",), "status"),
    (("bench", "plan"), "--launcher"),
    (("bench", "run"), "--wait"),
    (("bench", "status"), "--workspace"),
]


def saip(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``saip ARGS`` in a new process; stdout and stderr together in ``.stdout``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("SAIP_WORKSPACE", None)
    return subprocess.run(
        [*SAIP, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}"
    return result.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fresh")


@pytest.fixture(scope="module")
def data_root(scratch: Path) -> tuple[Path, str, str]:
    """``saip data synth`` twice into one root, as the README does: LUP crops, then every format."""
    synth = ("data", "synth", "--out", "data", "--ids", "8", "--format")
    lup = _ok(saip(*synth, "lup", "--images", "16", cwd=scratch))
    every = _ok(saip(*synth, "all", "--images", "48", cwd=scratch))
    return scratch / "data", lup, every


@pytest.mark.parametrize(("words", "phrase"), HELP, ids=[" ".join(w) or "saip" for w, _ in HELP])
def test_help(words: tuple[str, ...], phrase: str, tmp_path: Path) -> None:
    out = _ok(saip(*words, "--help", cwd=tmp_path))
    assert "Usage:" in out and phrase in out


def test_version_and_unknown_command(tmp_path: Path) -> None:
    assert _ok(saip("--version", cwd=tmp_path)).startswith("saip-bench ")
    wrong = saip("evaluat", cwd=tmp_path)
    assert wrong.returncode == 2 and "No such command" in wrong.stdout


@pytest.mark.parametrize("module", ["saip_bench.checkpoints", "saip_bench.backbones"])
def test_package_imports_on_its_own(module: str, tmp_path: Path) -> None:
    """The two halves of the former cycle, each imported first in a clean interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_data_synth_fills_a_root_in_and_check_finds_it(data_root: tuple, scratch: Path) -> None:
    root, lup, every = data_root
    assert "wrote lup" in " ".join(lup.split()) and (root / "LUP").is_dir()
    flat = " ".join(every.split())
    assert "wrote market1501" in flat and "kept lup" in flat  # the LUP folder from the first call stays
    again = saip("data", "synth", "--format", "lup", "--out", "data", cwd=scratch)
    assert again.returncode == 1 and "already exists" in again.stdout and "Traceback" not in again.stdout
    checked = _ok(saip("data", "check", "--root", "data", cwd=scratch))
    assert "Market-1501" in checked and " 0 malformed" in checked


@pytest.mark.slow
def test_pretrain_smoke(data_root: tuple[Path, str, str], scratch: Path) -> None:
    out = _ok(
        saip(
            "pretrain",
            "--config",
            "smoke_cpu",
            "--data",
            "data/LUP",
            "--out",
            "runs/smoke",
            "train.steps=2",
            "train.checkpoint_every=0",
            "train.tensorboard=false",
            cwd=scratch,
        )
    )
    assert "2 steps" in out
    assert (scratch / "runs/smoke/backbone.safetensors").is_file()
    assert (scratch / "runs/smoke/backbone.json").is_file()


@pytest.fixture(scope="module")
def evaluated(data_root: tuple[Path, str, str], scratch: Path) -> str:
    """A frozen re-ID probe at smoke budget, with a recipe override from the command line."""
    return _ok(
        saip(
            "evaluate",
            "--task",
            "reid",
            "--dataset",
            "market1501",
            "--backbone",
            "random:test_vit",
            "--data-root",
            "data",
            "--workspace",
            "ws",
            "--protocol",
            "frozen",
            "--budget",
            "smoke",
            "--device",
            "cpu",
            "eval.batch_size=8",
            cwd=scratch,
        )
    )


@pytest.mark.slow
def test_evaluate_records_a_result(evaluated: str, scratch: Path) -> None:
    import json

    assert "market1501" in evaluated and "done" in evaluated and "mAP" in evaluated
    assert (scratch / "ws" / "results.sqlite").is_file()
    [recipe] = list((scratch / "ws" / "runs" / "market1501").glob("*/recipe.json"))
    assert json.loads(recipe.read_text())["eval"]["batch_size"] == 8  # the override reached the recipe


@pytest.mark.slow
def test_report_reads_the_workspace(evaluated: str, scratch: Path) -> None:
    csv = _ok(saip("report", "--workspace", "ws", "--format", "csv", cwd=scratch))
    assert ",Market-1501,market1501," in csv and ",mAP,1," in csv and "random:test_vit" in csv
    table = _ok(saip("report", "--workspace", "ws", cwd=scratch))
    assert "random:test_vit" in table


def test_bad_override_is_one_line(data_root: tuple[Path, str, str], scratch: Path) -> None:
    common = ["evaluate", "--task", "reid", "--dataset", "market1501", "--backbone", "random:test_vit"]
    common += ["--data-root", "data", "--workspace", "ws_bad", "--budget", "smoke", "--device", "cpu"]
    for extra, message in (
        ("eval.batchsize=8", "unknown key 'eval.batchsize'"),
        ("train.epochs=two", "train.epochs='two': must be an integer >= 1"),
        ("--budgett", "unexpected argument '--budgett'"),
    ):
        result = saip(*common, extra, cwd=scratch)
        assert result.returncode == 1, result.stdout
        assert message in result.stdout and "Traceback" not in result.stdout
        assert len(result.stdout.strip().splitlines()) == 1, result.stdout


def test_bench_plan_lists_the_campaign(data_root: tuple[Path, str, str], scratch: Path) -> None:
    """A campaign planned from a fresh shell: every job listed, nothing written; a bad key is one line."""
    campaign = scratch / "campaign.yaml"
    campaign.write_text(
        "name: fresh\ndata_root: data\nworkspace: ws_bench\nbackbones: [random:test_vit]\n"
        "datasets: [market1501, pa100k]\nprotocols: [frozen, linear]\nbudgets: [smoke]\nseeds: [0, 1]\n"
    )
    out = " ".join(_ok(saip("bench", "plan", "campaign.yaml", cwd=scratch)).split())
    assert "4 to run, 0 recorded" in out and "pa100k frozen: n/a" in out
    assert not (scratch / "ws_bench").exists()
    campaign.write_text(campaign.read_text() + "seed: 3\n")
    bad = saip("bench", "run", "campaign.yaml", cwd=scratch)
    assert bad.returncode == 1 and "unknown key 'seed'" in bad.stdout and "Traceback" not in bad.stdout
    assert len(bad.stdout.strip().splitlines()) == 1, bad.stdout


def test_convert_a_timm_state_dict(tmp_path: Path) -> None:
    import timm
    import torch

    import saip_bench  # noqa: F401  (registers the SAIP entrypoints with timm)
    from saip_bench.backbones import load_backbone

    torch.manual_seed(3)
    vit = timm.create_model("saip_vit_tiny_patch16", num_classes=0)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in vit.state_dict().items()}
    torch.save(state, tmp_path / "timm_vit.pth")
    out = _ok(saip("convert", "timm_vit.pth", "converted.safetensors", cwd=tmp_path))
    assert "detected timm checkpoint" in " ".join(out.split())
    loaded = load_backbone(str(tmp_path / "converted.safetensors"))
    assert loaded.meta["format"] == "saip"
    for key, value in state.items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    missing = saip("convert", "nothing.pth", "o.safetensors", cwd=tmp_path)
    assert missing.returncode == 1 and "nothing.pth: no such checkpoint file" in missing.stdout
    assert "Traceback" not in missing.stdout and not (tmp_path / "o.safetensors").exists()

"""`saip evaluate` end to end on a synthetic Market-1501, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.results import open_workspace_store

BACKBONE = "random:test_vit"  # timm's tiny test ViT keeps the CLI run to seconds


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from saip_bench.datasets import DATASETS

    root = tmp_path_factory.mktemp("data")
    DATASETS.get("market1501").write_synth(root / "Market-1501-v15.09.15", ids=8, images=64, seed=0)
    return root


def _invoke(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args], catch_exceptions=False)


@pytest.mark.slow
def test_frozen_scales_then_skip_then_finetune(data_root: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    common = [
        "--task",
        "reid",
        "--backbone",
        BACKBONE,
        "--data-root",
        str(data_root),
        "--workspace",
        str(ws),
        "--budget",
        "smoke",
        "--device",
        "cpu",
    ]
    frozen = ["--dataset", "market1501", "--protocol", "frozen", "--scales", "0.5,1", "eval.batch_size=16"]
    first = _invoke(*common, *frozen)
    assert first.exit_code == 0, first.output
    recipes = [json.loads(f.read_text()) for f in (ws / "runs" / "market1501").glob("*/recipe.json")]
    assert [r["eval"]["batch_size"] for r in recipes] == [16]  # the key=value override, applied last
    assert recipes[0]["probe_scales"] == {"0.5": [128, 64]}  # one run (the probe), evaluated at x0.5 too
    records = open_workspace_store(ws).query(dataset="market1501")
    assert sorted(r.scale for r in records) == [0.5, 1.0]
    assert all(
        r.protocol == "frozen" and r.primary_metric == "mAP" and 0 < r.primary_value <= 100 for r in records
    )
    again = _invoke(*common, *frozen, "--train-per-scale")  # frozen trains nothing: the same evaluations
    assert again.exit_code == 0 and again.output.count("skipped") >= 2
    assert open_workspace_store(ws).count() == 2
    tuned = _invoke(*common, "--dataset", "all")
    assert tuned.exit_code == 0, tuned.output
    assert "missing" in tuned.output  # no MSMT17 folder under the data root
    [rec] = open_workspace_store(ws).query(protocol="finetune")
    assert rec.budget == "smoke" and set(rec.metrics) == {"mAP", "R1", "R5", "R10"}
    run_dirs = list((ws / "runs" / "market1501").iterdir())
    assert any((d / "last.pt").is_file() for d in run_dirs)


def test_user_errors_are_one_line(data_root: Path, tmp_path: Path) -> None:
    base = ["--task", "reid", "--backbone", BACKBONE, "--workspace", str(tmp_path / "ws"), "--device", "cpu"]
    missing = _invoke(*base, "--data-root", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "data root is not a folder" in missing.output
    scales = _invoke(*base, "--data-root", str(data_root), "--scales", "1,big")
    assert scales.exit_code == 1 and "--scales" in scales.output
    protocol = _invoke(
        *base, "--data-root", str(data_root), "--dataset", "market1501", "--protocol", "linear"
    )
    assert protocol.exit_code == 1 and "supports protocols finetune, frozen" in protocol.output
    task = _invoke(*base, "--data-root", str(data_root), "--task", "juggling")
    assert task.exit_code == 1 and "unknown task" in task.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["eval.batchsize=8"], "unknown key 'eval.batchsize'"),
        (["train.epoch=1"], "unknown key(s) epoch"),
        (["train.lr=fast"], "train.lr='fast': must be a finite number >= 0"),
        (["train.epochs"], "unexpected argument 'train.epochs': recipe overrides are key=value"),
        (["--epochs", "1"], "unexpected argument '--epochs'"),
    ],
)
def test_bad_overrides_are_one_line(data_root: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["--task", "reid", "--dataset", "market1501", "--backbone", BACKBONE]
    args += ["--data-root", str(data_root)]
    args += ["--workspace", str(tmp_path / "ws"), "--budget", "smoke", "--device", "cpu"]
    result = _invoke(*args, *extra)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "ws").glob("runs/*/*/recipe.json"))  # refused before any run started

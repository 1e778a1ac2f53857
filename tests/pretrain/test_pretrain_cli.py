"""`saip pretrain` end to end on tiny person crops: export, resolved config, user errors, NaN stop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from saip_bench.cli.app import app

runner = CliRunner()

# Real ViT-Tiny geometry (so the export rebuilds from its arch name) on very small views and heads.
FAST = [
    "train.threads=1",
    "train.checkpoint_every=0",
    "train.tensorboard=false",
    "train.batch_size=4",
    "heads.out_dim=64",
    "heads.hidden_dim=32",
    "heads.bottleneck_dim=16",
    "views.local_crops=3",
]


def write_lup(folder, n: int = 12, seed: int = 0) -> None:
    """Small JPEG person-like crops in a LUP folder (a person-shaped block on a background)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h = int(rng.integers(80, 120))
        img = np.empty((h, h // 2, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        img[h // 5 : -h // 8, h // 8 : -h // 8] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(folder / f"v{i % 3}_{i:04d}_00.jpg")


@pytest.fixture(scope="module")
def lup(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "LUP"
    write_lup(root)
    return root


def pretrain(*args: str):
    return runner.invoke(app, ["pretrain", *args], catch_exceptions=False)


def test_smoke_run_exports_a_loadable_backbone(lup, tmp_path):
    import timm

    from saip_bench.backbones import load_backbone
    from saip_bench.checkpoints import read_backbone_checkpoint

    out = tmp_path / "run"
    res = pretrain("--config", "smoke_cpu", "--data", str(lup), "--out", str(out), "--steps", "2", *FAST)
    assert res.exit_code == 0, res.output
    assert "2 steps" in res.output
    for name in ("backbone.safetensors", "backbone.json", "config.yaml", "checkpoint.pt"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "backbone.json").read_text())
    assert (meta["method"], meta["step"], meta["source"]) == ("saip", 2, str(out))
    assert meta["extra"]["branch"] == "teacher" and meta["config_digest"]
    backbone = load_backbone(str(out / "backbone.safetensors"))
    assert backbone(torch.randn(1, 3, 256, 128)).shape == (1, 192)
    state, meta = read_backbone_checkpoint(out / "backbone.safetensors")
    model = timm.create_model(meta["arch"], pretrained=False, num_classes=0, img_size=tuple(meta["img_size"]))
    model.load_state_dict(state, strict=True)
    resolved = (out / "config.yaml").read_text()
    assert "steps: 2" in resolved and "out_dim: 64" in resolved


@pytest.mark.parametrize("method", ["mae", "dino"])
def test_baselines_and_student_export(lup, tmp_path, method):
    out = tmp_path / method
    res = pretrain(
        "--config",
        "smoke_cpu",
        "--data",
        str(lup),
        "--out",
        str(out),
        "--steps",
        "1",
        "--method",
        method,
        "--export",
        "student",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "backbone.json").read_text())
    assert meta["method"] == method and meta["extra"]["branch"] == "student"


def test_ablation_option(lup, tmp_path):
    out = tmp_path / "ab"
    res = pretrain(
        "--config",
        "smoke_cpu",
        "--data",
        str(lup),
        "--out",
        str(out),
        "--steps",
        "1",
        "--objectives",
        "csm,csr",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "backbone.json").read_text())["extra"]["objectives"] == ["csm", "csr"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["train.stepz=3"], "unknown config key 'train.stepz'"),
        (["--method", "byol"], "valid names"),
        (["--objectives", "mae"], "not a term of method 'saip'"),
        (["--resume"], "no checkpoint"),
        (["--export", "both"], "expected teacher or student"),
        (["stray"], "key=value"),
    ],
)
def test_user_errors_are_one_line(lup, tmp_path, extra, message):
    res = runner.invoke(
        app, ["pretrain", "--config", "smoke_cpu", "--data", str(lup), "--out", str(tmp_path / "r"), *extra]
    )
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r" / "backbone.safetensors").exists()


def test_missing_data_folder(tmp_path):
    res = runner.invoke(
        app,
        ["pretrain", "--config", "smoke_cpu", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")],
    )
    assert res.exit_code == 1 and "nope" in res.output


def test_nan_loss_stops_cleanly(lup, tmp_path):
    out = tmp_path / "nan"
    # An absurd learning rate blows the weights up after the first update: the next loss is not finite.
    res = runner.invoke(
        app,
        [
            "pretrain",
            "--config",
            "smoke_cpu",
            "--data",
            str(lup),
            "--out",
            str(out),
            "--steps",
            "5",
            "train.blr=1e30",
            "train.warmup_steps=0",
            "train.clip_grad=0",
            *FAST,
        ],
    )
    assert res.exit_code == 1, res.output
    assert "loss is not finite" in res.output
    assert not (out / "checkpoint.pt").exists() and not (out / "backbone.safetensors").exists()


def test_second_run_into_a_used_folder_needs_resume(lup, tmp_path):
    out = tmp_path / "used"
    assert (
        pretrain(
            "--config", "smoke_cpu", "--data", str(lup), "--out", str(out), "--steps", "1", *FAST
        ).exit_code
        == 0
    )
    res = runner.invoke(
        app,
        ["pretrain", "--config", "smoke_cpu", "--data", str(lup), "--out", str(out), "--steps", "2", *FAST],
    )
    assert res.exit_code == 1 and "--resume" in res.output
    res = pretrain(
        "--config", "smoke_cpu", "--data", str(lup), "--out", str(out), "--steps", "2", "--resume", *FAST
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "backbone.json").read_text())["step"] == 2


def test_resume_without_config_uses_the_runs_own(lup, tmp_path):
    out = tmp_path / "own"
    args = ["--data", str(lup), "--out", str(out)]
    assert pretrain("--config", "smoke_cpu", *args, "--steps", "1", *FAST).exit_code == 0
    res = pretrain(*args, "--resume", "--steps", "2")  # config.yaml of the run: smoke_cpu + FAST
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "backbone.json").read_text())
    assert meta["step"] == 2 and meta["extra"]["pretrain_config"]["heads"]["out_dim"] == 64

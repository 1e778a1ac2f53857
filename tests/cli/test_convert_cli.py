"""`saip convert`: a SAIPv1 file becomes our format, loads back equal, and bad input is one red line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from typer.testing import CliRunner

from saip_bench.backbones import load_backbone
from saip_bench.cli.app import app


@pytest.fixture(scope="module")
def saipv1_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    vit = timm.create_model("saip_vit_tiny_patch16")
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in vit.state_dict().items()}
    teacher = {f"backbone.{k}": v for k, v in state.items()}
    teacher["backbone.inter_norm.weight"] = torch.ones(192)
    teacher["csr_decoder.decoder_pred.weight"] = torch.randn(768, 512)
    student = {f"module.{k}": torch.zeros_like(v) for k, v in teacher.items()}
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pth"
    torch.save({"student": student, "teacher": teacher, "epoch": 300}, path)
    return path, state


def test_convert_saipv1_teacher(saipv1_file: tuple[Path, dict], tmp_path: Path) -> None:
    src, state = saipv1_file
    out = tmp_path / "saip_vit_tiny.safetensors"
    result = CliRunner().invoke(app, ["convert", str(src), str(out), "--img-size", "384x128"])
    assert result.exit_code == 0, result.output
    assert "detected saipv1 checkpoint (saip, teacher branch)" in result.output
    assert f"loaded {len(state)} backbone tensors into saip_vit_tiny_patch16 at 384x128" in result.output
    assert "dropped 2 non-backbone keys" in result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["img_size"] == [384, 128] and meta["method"] == "saip"
    assert meta["extra"]["converted_from"] == "saipv1"
    assert meta["extra"]["dropped_modules"] == ["csr_decoder", "inter_norm"]
    bb = load_backbone(str(out))  # back at 256x128: resampled 24x8 -> 16x8
    assert bb.meta["format"] == "saip" and bb.model.pos_embed.shape == (1, 129, 192)
    native = load_backbone(str(src))
    for key, value in state.items():
        if key != "pos_embed":
            assert torch.equal(bb.model.state_dict()[key], value), key
    assert torch.equal(native.model.pos_embed, state["pos_embed"])


def test_convert_student_keeps_the_native_grid(saipv1_file: tuple[Path, dict], tmp_path: Path) -> None:
    src, state = saipv1_file
    out = tmp_path / "student"  # the suffix is added
    result = CliRunner().invoke(app, ["convert", str(src), str(out), "--branch", "student"])
    assert result.exit_code == 0, result.output
    assert "student branch" in result.output and "at 256x128" in result.output
    bb = load_backbone(str(tmp_path / "student.safetensors"))
    assert all(float(v.abs().sum()) == 0 for k, v in bb.model.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--branch", "ema"], "branch must be one of teacher, student"),
        (["--img-size", "256by128"], "is not HEIGHTxWIDTH"),
        (["--img-size", "250x128"], "multiples of the patch size 16"),
        (["--arch", "no_such_net"], "unknown backbone architecture 'no_such_net'"),
    ],
)
def test_bad_options_are_one_red_line(saipv1_file: tuple[Path, dict], tmp_path: Path, args, message) -> None:
    result = CliRunner().invoke(app, ["convert", str(saipv1_file[0]), str(tmp_path / "o.safetensors"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_corrupt_input_names_the_file_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated zip")
    result = CliRunner().invoke(
        app, ["convert", str(tmp_path / "broken.pth"), str(tmp_path / "o.safetensors")]
    )
    assert result.exit_code == 1
    assert "broken.pth: unreadable checkpoint" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth"]

"""Foreign layouts (SAIPv1, MAE, DINO, plain timm), each built here from our own modules with the foreign
key names and saved with torch.save, load tensor-equal; strict mismatches are errors that name the keys."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from saip_bench.backbones import load_backbone, resample_pos_embed
from saip_bench.checkpoints import read_any_checkpoint, save_backbone
from saip_bench.errors import CheckpointError


def _prefixed(state: dict, prefix: str) -> dict:
    return {f"{prefix}{k}": v.clone() for k, v in state.items()}


def _saipv1_branch(vit: torch.nn.Module, prefix: str) -> dict:
    """A CSLViTWrapper state dict: the ViT under backbone. plus its inter_norm and the three decoders."""
    sd = _prefixed(vit.state_dict(), f"{prefix}backbone.")
    sd[f"{prefix}backbone.inter_norm.weight"] = torch.ones(192)
    sd[f"{prefix}backbone.inter_norm.bias"] = torch.zeros(192)
    for module in ("csr_decoder.decoder_blocks.0.mlp.fc1", "csm_decoder.last_layer", "css_decoder.kernel"):
        sd[f"{prefix}{module}.weight"] = torch.randn(8, 4)
    sd[f"{prefix}csr_decoder.mask_token"] = torch.zeros(1, 1, 512)
    return sd


def _extras() -> dict:
    return {
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0)}},
            "param_groups": [{"lr": 1e-4, "params": [0]}],
        },
        "epoch": 12,
        "args": argparse.Namespace(model="saip_vit_tiny", height=256, width=128, output_dir="/cluster/x"),
    }


@pytest.mark.parametrize("student_prefix", ["module.", ""])
def test_saipv1_teacher_by_default_student_on_request(
    vit: torch.nn.Module, tmp_path: Path, same_weights, randomise, student_prefix: str
) -> None:
    other = randomise(timm.create_model("saip_vit_tiny_patch16"), seed=11)
    ckpt = {
        "student": _saipv1_branch(other, student_prefix),  # DDP-wrapped in the original training script
        "teacher": _saipv1_branch(vit, ""),
        "csm_loss": {"center": torch.zeros(1, 65536)},
        **_extras(),
    }
    torch.save(ckpt, tmp_path / "checkpoint0299.pth")
    found = read_any_checkpoint(tmp_path / "checkpoint0299.pth")
    assert (found.layout, found.method, found.branch) == ("saipv1", "saip", "teacher")
    assert "inter_norm.weight" in found.dropped and "csr_decoder.mask_token" in found.dropped
    teacher = load_backbone(str(tmp_path / "checkpoint0299.pth"))
    same_weights(teacher.model, vit)
    assert teacher.meta["format"] == "saipv1" and teacher.meta["branch"] == "teacher"
    stud = load_backbone(str(tmp_path / "checkpoint0299.pth"), branch="student")
    same_weights(stud.model, other)
    assert stud.digest != teacher.digest


def test_saipv1_prefixes_in_either_order(vit: torch.nn.Module, tmp_path: Path, same_weights) -> None:
    branch = {k.replace("backbone.", "backbone.module.", 1): v for k, v in _saipv1_branch(vit, "").items()}
    torch.save({"teacher": branch, "student": branch}, tmp_path / "s.pth")
    same_weights(load_backbone(str(tmp_path / "s.pth")).model, vit)


def test_mae_drops_decoder_and_resamples_a_square_grid(
    vit: torch.nn.Module, tmp_path: Path, randomise
) -> None:
    enc = randomise(timm.create_model("saip_vit_tiny_patch16", img_size=(224, 224)), seed=3)
    model = enc.state_dict()
    model.update(
        {
            "mask_token": torch.zeros(1, 1, 512),
            "decoder_embed.weight": torch.randn(512, 192),
            "decoder_pos_embed": torch.randn(1, 197, 512),
            "decoder_blocks.0.norm1.weight": torch.ones(512),
            "decoder_norm.weight": torch.ones(512),
            "decoder_pred.weight": torch.randn(768, 512),
        }
    )
    torch.save({"model": model, **_extras()}, tmp_path / "mae-pretrain.pth")
    bb = load_backbone(str(tmp_path / "mae-pretrain.pth"), img_size=(256, 128))
    assert bb.meta["format"] == "mae" and bb.meta["method"] == "mae"
    expect = resample_pos_embed(enc.pos_embed.detach(), (16, 8), (14, 14))
    torch.testing.assert_close(bb.model.pos_embed.detach(), expect)
    got, want = bb.model.state_dict(), enc.state_dict()
    for key in want:
        if key != "pos_embed":
            assert torch.equal(got[key], want[key]), key


def test_dino_backbone_without_head(vit: torch.nn.Module, tmp_path: Path, same_weights) -> None:
    head = {"head.mlp.0.weight": torch.randn(2048, 192), "head.last_layer.weight_g": torch.ones(65536, 1)}
    ckpt = {
        "student": {**_prefixed(vit.state_dict(), "module.backbone."), **_prefixed(head, "module.")},
        "teacher": {**_prefixed(vit.state_dict(), "backbone."), **head},
        "dino_loss": {"center": torch.zeros(1, 65536)},
        **_extras(),
    }
    torch.save(ckpt, tmp_path / "dino.pth")
    found = read_any_checkpoint(tmp_path / "dino.pth")
    assert (found.layout, found.method) == ("dino", "dino")
    assert sorted(found.dropped) == ["head.last_layer.weight_g", "head.mlp.0.weight"]
    same_weights(load_backbone(str(tmp_path / "dino.pth")).model, vit)
    same_weights(load_backbone(str(tmp_path / "dino.pth"), branch="student").model, vit)
    torch.save({"teacher": ckpt["teacher"]}, tmp_path / "teacher_only.pth")
    with pytest.raises(CheckpointError, match="has no 'student' weights"):
        load_backbone(str(tmp_path / "teacher_only.pth"), branch="student")


@pytest.mark.parametrize("kind", ["pth", "bin", "safetensors", "state_dict", "module"])
def test_plain_timm_state_dicts(vit: torch.nn.Module, tmp_path: Path, same_weights, kind: str) -> None:
    sd = {k: v.clone() for k, v in vit.state_dict().items()}
    path = tmp_path / f"w.{kind if kind in ('bin', 'safetensors') else 'pth'}"
    if kind == "safetensors":
        save_file(sd, str(path))
    else:
        obj = (
            {"state_dict": sd}
            if kind == "state_dict"
            else _prefixed(sd, "module.")
            if kind == "module"
            else sd
        )
        torch.save(obj, path)
    bb = load_backbone(str(path))
    assert bb.meta["format"] == "timm"
    same_weights(bb.model, vit)


def test_tiny_vit_imagenet_layout_drops_its_classifier(tmp_path: Path, same_weights, randomise) -> None:
    src = randomise(timm.create_model("tiny_vit_5m_224", num_classes=7), seed=5)
    torch.save(src.state_dict(), tmp_path / "tiny.pth")
    bb = load_backbone(str(tmp_path / "tiny.pth"))
    assert bb.arch == "saip_tiny_vit_5m"
    want = {k: v for k, v in src.state_dict().items() if not k.startswith("head.fc.")}
    got = bb.model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_missing_and_unexpected_keys_are_listed(vit: torch.nn.Module, tmp_path: Path) -> None:
    sd = {k: v.clone() for k, v in vit.state_dict().items()}
    del sd["blocks.3.mlp.fc1.weight"], sd["blocks.7.mlp.fc1.weight"]
    sd["blocks.3.ls1.gamma"] = torch.ones(192)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_backbone(str(tmp_path / "bad.pth"))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'bad.pth'}: does not fit the saip_vit_tiny_patch16 backbone")
    assert "2 missing key(s): blocks.{3,7}.mlp.fc1.weight" in msg
    assert "1 unexpected key(s): blocks.3.ls1.gamma" in msg and "\n" not in msg
    # An explicit allow-list lets both through; the missing tensors keep their initial values.
    bb = load_backbone(
        str(tmp_path / "bad.pth"), allow_missing=["blocks.*.mlp.fc1.weight"], allow_unexpected=["*.ls1.*"]
    )
    assert torch.equal(bb.model.blocks[0].mlp.fc1.weight, vit.blocks[0].mlp.fc1.weight)
    assert not torch.equal(bb.model.blocks[3].mlp.fc1.weight, vit.blocks[3].mlp.fc1.weight)


def test_vit_base_width_is_rejected_naming_both_shapes(tmp_path: Path) -> None:
    with torch.device("meta"):
        base = VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)
    # Real ViT-Base shapes at a few bytes each: every tensor is a stride-0 view of one zero.
    sd = {k: torch.zeros(1).expand(v.shape) for k, v in base.state_dict().items()}
    torch.save(sd, tmp_path / "vit_base.pth")
    assert (tmp_path / "vit_base.pth").stat().st_size < 1_000_000
    with pytest.raises(CheckpointError) as err:
        load_backbone(str(tmp_path / "vit_base.pth"))
    msg = str(err.value)
    assert "768-wide checkpoint" in msg and "width 192" in msg
    assert "[1, 1, 768]" in msg and "[1, 1, 192]" in msg


def test_pos_embed_of_another_grid_is_resampled_in_2d(vit: torch.nn.Module, tmp_path: Path) -> None:
    save_backbone(
        tmp_path / "bb",
        vit,
        arch="saip_vit_tiny_patch16",
        img_size=(256, 128),
        method="saip",
        step=0,
        source="test",
    )
    tall = load_backbone(str(tmp_path / "bb.safetensors"), img_size=(384, 128))
    grid = vit.pos_embed.detach()[:, 1:].reshape(1, 16, 8, 192).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(24, 8), mode="bicubic", align_corners=False, antialias=True)
    got = tall.model.pos_embed.detach()
    torch.testing.assert_close(got[:, 1:], expect.permute(0, 2, 3, 1).reshape(1, 24 * 8, 192))
    assert torch.equal(got[:, :1], vit.pos_embed.detach()[:, :1])
    # Loading at a size equals loading at the native size and resizing after.
    later = load_backbone(str(tmp_path / "bb.safetensors"))
    later.set_img_size((384, 128))
    assert torch.equal(later.model.pos_embed, tall.model.pos_embed)
    assert tall.digest == later.digest


def test_a_grid_that_cannot_be_told_is_an_error(vit: torch.nn.Module, tmp_path: Path) -> None:
    sd = {k: v.clone() for k, v in vit.state_dict().items()}
    sd["pos_embed"] = torch.randn(1, 1 + 131, 192)
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="cannot tell the patch grid of a pos_embed with 131"):
        load_backbone(str(tmp_path / "odd.pth"))


def test_a_file_without_tensors_is_an_error(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "args": argparse.Namespace(lr=1.0)}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="empty.pth: no backbone state dict found"):
        load_backbone(str(tmp_path / "empty.pth"))


def test_saipv1_backbone_saved_alone_and_pretraining_keys_elsewhere(
    vit: torch.nn.Module, tmp_path: Path, same_weights
) -> None:
    alone = _saipv1_branch(vit, "")
    alone = {k[len("backbone.") :]: v for k, v in alone.items() if k.startswith("backbone.")}
    torch.save(alone, tmp_path / "saipvit.pth")
    found = read_any_checkpoint(tmp_path / "saipvit.pth")
    assert found.layout == "saipv1" and found.dropped == ["inter_norm.bias", "inter_norm.weight"]
    same_weights(load_backbone(str(tmp_path / "saipvit.pth")).model, vit)
    # Outside the MAE layout a mask_token is not silently dropped: strict loading names it.
    plain = {**vit.state_dict(), "mask_token": torch.zeros(1, 1, 192)}
    torch.save(plain, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="1 unexpected key\\(s\\): mask_token"):
        load_backbone(str(tmp_path / "plain.pth"))


def test_a_file_that_is_no_checkpoint_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pth"
    bad.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=r"notes\.pth: not a checkpoint"):
        read_any_checkpoint(bad)

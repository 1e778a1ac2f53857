"""Our safetensors + JSON format: round trip, metadata, integrity and unreadable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from saip_bench.backbones import load_backbone
from saip_bench.checkpoints import is_saip_checkpoint, read_backbone_checkpoint, save_backbone, state_digest
from saip_bench.errors import CheckpointError
from saip_bench.io import sha256_file


def _save(vit: torch.nn.Module, path: Path) -> Path:
    return save_backbone(
        path,
        vit,
        arch="saip_vit_tiny_patch16",
        img_size=(256, 128),
        method="saip",
        step=120,
        source="runs/demo",
        config_digest="abc123",
        extra={"note": "test"},
    )


def test_round_trip_writes_both_files_with_metadata(vit: torch.nn.Module, tmp_path: Path) -> None:
    weights = _save(vit, tmp_path / "bb.safetensors")
    meta_path = tmp_path / "bb.json"
    assert weights == tmp_path / "bb.safetensors" and meta_path.is_file()
    meta = json.loads(meta_path.read_text())
    for key, value in {
        "arch": "saip_vit_tiny_patch16",
        "img_size": [256, 128],
        "patch_size": 16,
        "embed_dim": 192,
        "method": "saip",
        "step": 120,
        "source": "runs/demo",
        "config_digest": "abc123",
    }.items():
        assert meta[key] == value, key
    assert meta["weights_sha256"] == sha256_file(weights)
    assert meta["package_version"] and meta["created"].endswith("+00:00")
    assert meta["extra"] == {"note": "test"}
    state, meta2 = read_backbone_checkpoint(weights)
    assert meta2 == meta and state.keys() == vit.state_dict().keys()
    assert meta["state_digest"] == state_digest(vit.state_dict())
    assert is_saip_checkpoint(tmp_path / "bb") and not list(tmp_path.glob("*.tmp"))


def test_load_backbone_from_our_file_gives_the_same_network(
    vit: torch.nn.Module, tmp_path: Path, same_weights
) -> None:
    _save(vit, tmp_path / "bb")
    bb = load_backbone(str(tmp_path / "bb.safetensors"))
    same_weights(bb.model, vit)
    assert bb.name == "bb" and bb.meta["method"] == "saip" and bb.meta["format"] == "saip"
    assert bb.meta["step"] == 120 and bb.digest == state_digest(vit.state_dict())
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), vit.forward_head(vit.forward_features(x), pre_logits=True))
    # Saving the wrapper again gives the same digest: identity follows the weights, not the file.
    save_backbone(
        tmp_path / "again", bb, arch=bb.arch, img_size=bb.img_size, method="saip", step=1, source="x"
    )
    assert load_backbone(str(tmp_path / "again.safetensors")).digest == bb.digest


def test_tampered_weights_and_missing_sidecar_are_errors(vit: torch.nn.Module, tmp_path: Path) -> None:
    weights = _save(vit, tmp_path / "bb")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        read_backbone_checkpoint(weights)
    (tmp_path / "bb.json").unlink()
    with pytest.raises(CheckpointError, match=r"bb\.json: missing"):
        read_backbone_checkpoint(weights)


def test_corrupt_files_raise_one_clear_error(tmp_path: Path) -> None:
    for name, blob in {
        "bad.pth": b"\x80\x02not a pickle at all",
        "bad.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage",
    }.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match=rf"{name}: unreadable checkpoint") as err:
            load_backbone(str(tmp_path / name))
        assert "\n" not in str(err.value)


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (exec, ("raise SystemExit('pwned')",))

    torch.save({"model": {"w": torch.zeros(1)}, "evil": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth: unreadable checkpoint"):
        load_backbone(str(tmp_path / "evil.pth"))


def test_identical_weights_give_identical_bytes(tmp_path: Path) -> None:
    # Reproducible exports: the same network saved twice is the same file (checksums, caches, diffs).
    model = timm.create_model("saip_vit_tiny_patch16", img_size=(64, 32))
    blobs = set()
    for i in range(4):
        save_backbone(tmp_path / f"b{i}.safetensors", model, arch="saip_vit_tiny_patch16", img_size=(64, 32),
                      method="test", step=0, source="test")  # fmt: skip
        blobs.add((tmp_path / f"b{i}.safetensors").read_bytes())
    assert len(blobs) == 1

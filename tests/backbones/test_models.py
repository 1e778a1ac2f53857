"""Every registered SAIP entrypoint: forward at person-crop sizes, multi-level maps, specs and errors."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import saip_bench  # noqa: F401  (registers the entrypoints)
from saip_bench.backbones import Backbone, load_backbone, resample_pos_embed
from saip_bench.errors import CheckpointError, ConfigError

SAIP_MODELS = timm.list_models("saip_*")
SIZES = [(256, 128), (256, 192), (384, 128)]


def test_both_saip_entrypoints_are_registered() -> None:
    assert {"saip_vit_tiny_patch16", "saip_tiny_vit_5m"} <= set(SAIP_MODELS)


@pytest.fixture(scope="module", params=SAIP_MODELS)
def backbone(request: pytest.FixtureRequest) -> Backbone:
    return load_backbone(f"random:{request.param}")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_forward_and_maps_at_person_sizes(backbone: Backbone, size: tuple[int, int]) -> None:
    backbone.set_img_size(size)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        emb = backbone(x)
        maps = backbone.forward_maps(x)
    assert emb.shape == (1, backbone.embed_dim)
    assert torch.isfinite(emb).all()
    assert len(maps) == len(backbone.map_channels) == len(backbone.map_strides) == 4
    for fmap, chans, stride in zip(maps, backbone.map_channels, backbone.map_strides, strict=True):
        assert fmap.shape == (1, chans, size[0] // stride, size[1] // stride)
    assert backbone.img_size == size


@pytest.mark.parametrize("name", SAIP_MODELS)
def test_timm_create_model_takes_img_size(name: str) -> None:
    model = timm.create_model(name, img_size=(320, 160))
    assert model.pretrained_cfg["input_size"] == (3, 320, 160)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 320, 160))
    assert out.shape == (1, model.num_features)  # headless by default


def test_vit_numbers_and_map_levels() -> None:
    bb = load_backbone("random:saip_vit_tiny_patch16")
    model = bb.model
    assert (bb.embed_dim, len(model.blocks), model.blocks[0].attn.num_heads, bb.patch_size) == (
        192,
        12,
        3,
        16,
    )
    assert 5.3e6 < sum(p.numel() for p in model.parameters()) < 5.8e6
    assert bb.map_indices == [3, 5, 7, 11] and bb.map_strides == [16] * 4
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        tokens = model.forward_features(x)
        maps = bb.forward_maps(x)
        emb = bb(x)
        # Block 11's output is the last map; the embedding is the final-norm CLS token.
        h = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        for blk in model.blocks:
            h = blk(h)
    torch.testing.assert_close(emb, tokens[:, 0])
    torch.testing.assert_close(maps[-1], h[:, 1:].reshape(1, 16, 8, 192).permute(0, 3, 1, 2))


def test_tiny_vit_stage_strides() -> None:
    bb = load_backbone("random:saip_tiny_vit_5m")
    assert bb.map_channels == [64, 128, 160, 320] and bb.map_strides == [4, 8, 16, 32]
    assert bb.embed_dim == 320


def test_set_img_size_resamples_pos_embed_in_2d() -> None:
    bb = load_backbone("random:saip_vit_tiny_patch16")
    before = bb.model.pos_embed.detach().clone()
    bb.set_img_size((384, 192))
    grid = before[:, 1:].reshape(1, 16, 8, 192).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(24, 12), mode="bicubic", align_corners=False, antialias=True)
    after = bb.model.pos_embed.detach()
    torch.testing.assert_close(after[:, :1], before[:, :1])
    torch.testing.assert_close(after[:, 1:], expect.permute(0, 2, 3, 1).reshape(1, 288, 192))
    assert tuple(bb.model.patch_embed.grid_size) == (24, 12)
    torch.testing.assert_close(resample_pos_embed(before, (24, 12), (16, 8)), after)


def test_random_spec_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = load_backbone("random:saip_vit_tiny_patch16")
    assert torch.equal(torch.rand(1), expected_next)
    b = load_backbone("random:saip_vit_tiny_patch16", img_size=(256, 128))
    assert a.digest == b.digest and a.name == "random:saip_vit_tiny_patch16"
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert a.meta["method"] == "random"
    assert not a.training  # returned ready for inference
    c = load_backbone("random:saip_tiny_vit_5m")
    assert c.digest != a.digest


def test_img_size_must_be_a_multiple_of_the_patch() -> None:
    with pytest.raises(ConfigError, match="multiples of the patch size 16"):
        load_backbone("random:saip_vit_tiny_patch16", img_size=(250, 128))
    with pytest.raises(ConfigError):
        timm.create_model("saip_vit_tiny_patch16", img_size=(256, 100))


def test_unknown_architecture_lists_ours() -> None:
    with pytest.raises(ConfigError, match="saip_tiny_vit_5m, saip_vit_tiny_patch16"):
        load_backbone("random:no_such_net")


def test_missing_path_and_missing_timm_weights_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_backbone(str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="cannot be downloaded here") as err:
        load_backbone(f"timm:vit_tiny_patch16_224={tmp_path / 'w.safetensors'}")
    assert "\n" not in str(err.value) and "w.safetensors" in str(err.value)
    with pytest.raises(ConfigError, match="empty backbone spec"):
        load_backbone("  ")


def test_timm_spec_with_local_weights(tmp_path) -> None:
    src = timm.create_model("vit_tiny_patch16_224", num_classes=10)  # a classifier head to be dropped
    torch.save(src.state_dict(), tmp_path / "vit.pth")
    bb = load_backbone(f"timm:vit_tiny_patch16_224={tmp_path / 'vit.pth'}", img_size=(224, 224))
    assert bb.name == "timm:vit_tiny_patch16_224=vit"
    torch.testing.assert_close(bb.model.blocks[3].mlp.fc1.weight, src.blocks[3].mlp.fc1.weight)
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        torch.testing.assert_close(bb(x), src.forward_head(src.forward_features(x), pre_logits=True))
    plain = load_backbone("timm:vit_tiny_patch16_224", img_size=(224, 224))
    assert plain.digest != bb.digest


def test_other_sizes_run_without_set_img_size_and_agree_with_it() -> None:
    # Pretraining feeds 128x64 local views and 320x160 enlarged views to the 256x128 module directly.
    bb = load_backbone("random:saip_vit_tiny_patch16")
    x = torch.randn(1, 3, 320, 160)
    with torch.no_grad():
        direct = bb(x)
        small = bb.forward_maps(torch.randn(1, 3, 128, 64))
        bb.set_img_size((320, 160))
        resized = bb(x)
    assert small[0].shape == (1, 192, 8, 4)
    torch.testing.assert_close(direct, resized)

"""The ViTDet simple feature pyramid on a plain ViT (one stride-16 map) and on TinyViT (native levels)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from saip_bench.backbones import Backbone, load_backbone
from saip_bench.backbones.pyramid import SimpleFeaturePyramid
from saip_bench.errors import ConfigError

SIZE = (128, 96)


@pytest.fixture(scope="module")
def vit() -> Backbone:
    return load_backbone("random:saip_vit_tiny_patch16", img_size=SIZE)


@pytest.fixture(scope="module")
def tiny_vit() -> Backbone:
    return load_backbone("random:saip_tiny_vit_5m", img_size=SIZE)


@pytest.mark.parametrize("strides", [(4, 8, 16, 32), (8, 16, 32), (16,), (32,)])
def test_vit_pyramid_shapes(vit: Backbone, strides: tuple[int, ...]) -> None:
    pyramid = SimpleFeaturePyramid(vit, strides, out_channels=32)
    assert pyramid.single_stride and pyramid.strides == strides
    with torch.no_grad():
        maps = pyramid(torch.randn(2, 3, *SIZE))
    assert [tuple(m.shape) for m in maps] == [(2, 32, SIZE[0] // s, SIZE[1] // s) for s in strides]
    assert all(torch.isfinite(m).all() for m in maps)


def test_vit_pyramid_levels_come_from_the_last_map(vit: Backbone) -> None:
    """Stride 16 is the last ViT map through the projection alone (no rescale), as in ViTDet."""
    pyramid = SimpleFeaturePyramid(vit, (16,), out_channels=32).eval()
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        (level,) = pyramid(x)
        expected = pyramid.project[0](vit.forward_maps(x)[-1])
    torch.testing.assert_close(level, expected)
    assert isinstance(pyramid.rescale[0], nn.Identity)


def test_tiny_vit_pyramid_uses_native_levels(tiny_vit: Backbone) -> None:
    strides = (4, 8, 16, 32)
    pyramid = SimpleFeaturePyramid(tiny_vit, strides, out_channels=48).eval()
    assert not pyramid.single_stride
    assert all(isinstance(m, nn.Identity) for m in pyramid.rescale)
    # Each level's projection takes that level's native channels.
    assert [p[0].in_channels for p in pyramid.project] == tiny_vit.map_channels
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        maps = pyramid(x)
        native = tiny_vit.forward_maps(x)
    assert [tuple(m.shape) for m in maps] == [(1, 48, SIZE[0] // s, SIZE[1] // s) for s in strides]
    torch.testing.assert_close(maps[2], pyramid.project[2](native[2]))


def test_tiny_vit_pyramid_subset_of_levels(tiny_vit: Backbone) -> None:
    pyramid = SimpleFeaturePyramid(tiny_vit, (8, 32), out_channels=16)
    assert [p[0].in_channels for p in pyramid.project] == [tiny_vit.map_channels[1], tiny_vit.map_channels[3]]
    with torch.no_grad():
        maps = pyramid(torch.randn(1, 3, *SIZE))
    assert [tuple(m.shape) for m in maps] == [(1, 16, 16, 12), (1, 16, 4, 3)]


@pytest.mark.parametrize("arch", ["saip_vit_tiny_patch16", "saip_tiny_vit_5m"])
def test_gradient_reaches_the_backbone(arch: str) -> None:
    backbone = load_backbone(f"random:{arch}", img_size=(64, 64))
    backbone.train()
    pyramid = SimpleFeaturePyramid(backbone, (8, 16, 32), out_channels=16)
    maps = pyramid(torch.randn(2, 3, 64, 64))
    sum(m.square().mean() for m in maps).backward()
    stem = next(p for n, p in backbone.model.named_parameters() if n.startswith("patch_embed"))
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert all(p.grad is not None for p in pyramid.project.parameters())


@pytest.mark.parametrize(
    "strides",
    [(16, 8), (8, 8, 16), (2, 4), (8, 64), ()],
    ids=["descending", "duplicate", "stride-2", "stride-64", "empty"],
)
@pytest.mark.parametrize("arch", ["vit", "tiny_vit"])
def test_bad_strides_are_config_errors(
    request: pytest.FixtureRequest, arch: str, strides: tuple[int, ...]
) -> None:
    backbone = request.getfixturevalue(arch)
    with pytest.raises(ConfigError, match="strides") as err:
        SimpleFeaturePyramid(backbone, strides)
    assert "\n" not in str(err.value)


class _ThreeLevels(nn.Module):
    """A hierarchical backbone without a stride-4 level (what a timm convnet may expose)."""

    arch = "three_levels"
    map_strides = [8, 16, 32]
    map_channels = [8, 16, 32]


def test_hierarchical_backbone_without_the_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"three_levels has maps at strides \[8, 16, 32\], not 4"):
        SimpleFeaturePyramid(_ThreeLevels(), (4, 8))  # type: ignore[arg-type]

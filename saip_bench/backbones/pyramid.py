"""Multi-level feature maps from any backbone: a ViTDet-style simple feature pyramid.

A plain ViT gives maps at one stride (16). Dense tasks want several: the simple feature pyramid (Li et al.,
"Exploring Plain Vision Transformer Backbones for Object Detection", ViTDet) builds them from the *last* map
alone, upsampling with transposed convolutions (stride 8, 4) and downsampling with max-pooling (stride 32),
then projecting every level to ``out_channels`` with a 1x1 and a 3x3 convolution, each followed by a
LayerNorm over channels. A hierarchical backbone (TinyViT) already has maps at strides 4/8/16/32: the pyramid
picks the level of each requested stride and applies the same projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saip_bench.backbones.wrapper import Backbone
from saip_bench.errors import ConfigError


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of an NCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _rescale(channels: int, factor: float) -> tuple[nn.Module, int]:
    """A module rescaling a map by ``factor`` (4, 2, 1, 0.5) and the channels it outputs (ViTDet)."""
    if factor == 4:
        return (
            nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
                LayerNorm2d(channels // 2),
                nn.GELU(),
                nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2),
            ),
            channels // 4,
        )
    if factor == 2:
        return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
    if factor == 1:
        return nn.Identity(), channels
    if factor == 0.5:
        return nn.MaxPool2d(2, stride=2), channels
    raise ConfigError(f"simple feature pyramid: cannot rescale by {factor} (valid: 4, 2, 1, 0.5)")


class SimpleFeaturePyramid(nn.Module):
    """Maps of ``backbone`` at ``strides``, each with ``out_channels`` channels.

    Args:
        backbone: the suite's backbone; trained with the pyramid unless the caller freezes it.
        strides: output strides, ascending, from {4, 8, 16, 32}.
        out_channels: channels of every output level (256 in ViTDet/FPN).
    """

    def __init__(self, backbone: Backbone, strides: Sequence[int] = (8, 16, 32), out_channels: int = 256):
        super().__init__()
        self.backbone = backbone
        self.strides = tuple(int(s) for s in strides)
        if (
            not self.strides
            or list(self.strides) != sorted(set(self.strides))
            or not set(self.strides) <= {4, 8, 16, 32}
        ):
            raise ConfigError(f"pyramid strides must be ascending values from 4, 8, 16, 32; got {strides}")
        self.out_channels = int(out_channels)
        self.single_stride = len(set(backbone.map_strides)) == 1
        rescale, project = [], []
        for stride in self.strides:
            if self.single_stride:
                module, channels = _rescale(backbone.map_channels[-1], backbone.map_strides[-1] / stride)
            else:
                if stride not in backbone.map_strides:
                    raise ConfigError(
                        f"{backbone.arch} has maps at strides {backbone.map_strides}, not {stride}"
                    )
                module, channels = nn.Identity(), backbone.map_channels[backbone.map_strides.index(stride)]
            rescale.append(module)
            project.append(
                nn.Sequential(
                    nn.Conv2d(channels, out_channels, 1, bias=False),
                    LayerNorm2d(out_channels),
                    nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                    LayerNorm2d(out_channels),
                )
            )
        self.rescale = nn.ModuleList(rescale)
        self.project = nn.ModuleList(project)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self.backbone.forward_maps(x)
        outs = []
        for stride, rescale, project in zip(self.strides, self.rescale, self.project, strict=True):
            source = maps[-1] if self.single_stride else maps[self.backbone.map_strides.index(stride)]
            outs.append(project(rescale(source)))
        return outs

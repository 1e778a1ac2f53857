"""The parsing network: backbone -> simple feature pyramid -> a compact FPN/UperNet-style fusion head.

The pyramid (:class:`saip_bench.backbones.pyramid.SimpleFeaturePyramid`, ViTDet) gives maps at strides
4, 8, 16 and 32 for a plain ViT or a hierarchical TinyViT alike. The head upsamples every level to stride 4,
concatenates them, fuses with a 3x3 conv-BN-ReLU and classifies with a 1x1 conv (dropout 0.1 before it, as
mmseg's decode heads do); the logits at stride 4 are upsampled bilinearly by the caller to the label size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from saip_bench.backbones.pyramid import SimpleFeaturePyramid

STRIDES = (4, 8, 16, 32)


class FusionHead(nn.Module):
    """``len(in_levels)`` maps of ``in_channels`` -> ``(B, num_classes, H/4, W/4)`` logits."""

    def __init__(
        self, in_channels: int, num_levels: int, channels: int, num_classes: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels * num_levels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        size = maps[0].shape[-2:]
        up = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        return self.classifier(self.dropout(self.fuse(torch.cat(up, dim=1))))


class ParsingModel(nn.Module):
    """Backbone + pyramid + :class:`FusionHead`; ``forward(x)`` gives stride-4 logits.

    Args:
        backbone: the suite's :class:`~saip_bench.backbones.wrapper.Backbone`.
        num_classes: number of part classes (20 for LIP and CIHP).
        pyramid_channels: channels of every pyramid level.
        head_channels: channels of the fused map.
        dropout: dropout before the classifier.
        freeze_backbone: keep the backbone frozen and in eval mode (the ``linear`` protocol: only the pyramid
            and head train).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        pyramid_channels: int = 256,
        head_channels: int = 256,
        dropout: float = 0.1,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.pyramid = SimpleFeaturePyramid(backbone, strides=STRIDES, out_channels=pyramid_channels)
        self.head = FusionHead(pyramid_channels, len(STRIDES), head_channels, num_classes, dropout)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            backbone.requires_grad_(False)
            backbone.eval()

    @property
    def backbone(self) -> nn.Module:
        return self.pyramid.backbone

    def train(self, mode: bool = True) -> ParsingModel:
        super().train(mode)
        if self.freeze_backbone:
            self.pyramid.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pyramid(images))

"""The suite's backbone as an OpenMMLab backbone (mmpose and mmdet ``MODELS`` registries).

Registered as ``SaipBackbone`` by :func:`saip_bench.mm.setup_mm`. In an mm config::

    backbone=dict(type="SaipBackbone", spec="runs/saip/backbone.safetensors", img_size=(256, 192),
                  out="last")                       # ViTPose: the last stride-16 map
    backbone=dict(type="SaipBackbone", spec="random:saip_vit_tiny_patch16", img_size=(512, 512),
                  out="pyramid", strides=(8, 16, 32), out_channels=256)   # ViTDet simple pyramid

``spec`` is any ``--backbone`` value (our checkpoints, SAIPv1/MAE/DINO files, ``random:``, ``timm:``). The
suite's adapters pass an already-loaded :class:`~saip_bench.backbones.Backbone` instead, through
:meth:`SaipMMBackbone.wrap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from saip_bench.backbones import Backbone, load_backbone
from saip_bench.backbones.pyramid import SimpleFeaturePyramid
from saip_bench.errors import ConfigError

OUT_MODES = ("last", "pyramid")


class SaipMMBackbone(nn.Module):
    """Backbone + optional simple feature pyramid; ``forward`` returns a tuple of NCHW maps.

    Args:
        spec: a ``--backbone`` value, loaded with :func:`saip_bench.backbones.load_backbone`.
        img_size: ``(H, W)`` the model is laid out for (the ViT position embedding is resampled to it).
        out: ``"last"`` (the last map, stride 16 for a ViT: ViTPose) or ``"pyramid"`` (simple pyramid).
        strides: pyramid strides (``out="pyramid"``).
        out_channels: pyramid channels (``out="pyramid"``).
        backbone: an already-loaded backbone, used instead of ``spec``.
        init_cfg: accepted for mm config compatibility; weights come from ``spec`` only.
    """

    def __init__(
        self,
        spec: str | None = None,
        img_size: Sequence[int] = (256, 192),
        out: str = "last",
        strides: Sequence[int] = (8, 16, 32),
        out_channels: int = 256,
        backbone: Backbone | None = None,
        init_cfg: Any = None,
    ) -> None:
        super().__init__()
        if out not in OUT_MODES:
            raise ConfigError(f"SaipBackbone: out must be one of {', '.join(OUT_MODES)}, not {out!r}")
        if backbone is None:
            if not spec:
                raise ConfigError("SaipBackbone needs a spec (checkpoint path, random:NAME or timm:NAME)")
            backbone = load_backbone(spec, img_size=(int(img_size[0]), int(img_size[1])))
        self.out = out
        self.backbone = backbone
        if out == "pyramid":
            self.neck = SimpleFeaturePyramid(backbone, strides, out_channels)
            self.out_channels = [int(out_channels)] * len(self.neck.strides)
            self.out_strides = list(self.neck.strides)
        else:
            self.neck = None
            self.out_channels = [backbone.map_channels[-1]]
            self.out_strides = [backbone.map_strides[-1]]

    @classmethod
    def wrap(cls, backbone: Backbone, **kwargs: Any) -> SaipMMBackbone:
        """Wrap an already-loaded backbone (what dispatch hands to an adapter)."""
        return cls(backbone=backbone, img_size=backbone.img_size, **kwargs)

    def init_weights(self) -> None:
        """Weights come from the spec; mm's initialisation pass must not overwrite them."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.neck is not None:
            return tuple(self.neck(x))
        return (self.backbone.forward_maps(x)[-1],)

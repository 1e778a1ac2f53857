"""One feature interface for every task: a global embedding and multi-level NCHW maps."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saip_bench.backbones.pos_embed import resample_pos_embed
from saip_bench.backbones.vit import check_img_size, vit_map_indices


def is_vit(model: nn.Module) -> bool:
    """A plain (non-hierarchical) ViT: patch tokens with an absolute position embedding and blocks."""
    return hasattr(model, "blocks") and hasattr(model, "patch_embed") and hasattr(model, "pos_embed")


class Backbone(nn.Module):
    """A timm backbone with the suite's feature interface.

    Attributes:
        model: The timm module (what checkpoints store).
        name: Row name in reports (checkpoint stem, ``random:NAME``, ``timm:NAME``).
        arch: timm architecture name.
        embed_dim: Width of :meth:`forward`'s embedding.
        img_size: ``(H, W)`` the position embedding is laid out for.
        patch_size: Patch size (ViT) or stem stride (hierarchical models).
        meta: Checkpoint facts (arch, method, source, format, ...).
        digest: Identity of the weights (state digest, or a digest of the spec for seeded random weights).
        map_channels: Channels of each :meth:`forward_maps` level.
        map_strides: Stride (input pixels per map cell) of each level.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        arch: str,
        img_size: tuple[int, int],
        digest: str,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.arch = arch
        self.digest = digest
        self.meta = dict(meta or {})
        self.embed_dim = int(model.num_features)
        self._vit = is_vit(model)
        if self._vit:
            self.patch_size = int(model.patch_embed.patch_size[0])
            self.map_indices = list(vit_map_indices(len(model.blocks)))
            self.map_channels = [self.embed_dim] * len(self.map_indices)
            self.map_strides = [self.patch_size] * len(self.map_indices)
        else:
            info = list(getattr(model, "feature_info", []))[-4:]
            if not info or not hasattr(model, "forward_intermediates"):
                raise TypeError(f"{arch}: timm model without forward_intermediates/feature_info")
            stem = getattr(getattr(model, "patch_embed", None), "stride", None)
            self.patch_size = int(stem if stem is not None else info[0]["reduction"])
            n_levels = len(getattr(model, "feature_info", []))
            self.map_indices = list(range(n_levels - len(info), n_levels))
            self.map_channels = [int(i["num_chs"]) for i in info]
            self.map_strides = [int(i["reduction"]) for i in info]
        self.img_size = tuple(img_size)
        if self.img_size != tuple(getattr(model, "img_size", self.img_size)) or self._vit:
            self.set_img_size(self.img_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global embedding ``(B, embed_dim)``: final-norm CLS token (ViT) or the pooled, normed map."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-level maps ``(B, map_channels[i], H / map_strides[i], W / map_strides[i])``.

        A hierarchical model fed a size that is not a multiple of its last stride rounds up (ceil).
        """
        return self.model.forward_intermediates(
            x, indices=self.map_indices, output_fmt="NCHW", intermediates_only=True
        )

    def set_img_size(self, img_size: tuple[int, int]) -> None:
        """Lay the model out for ``(H, W)`` inputs; a ViT's ``pos_embed`` is resampled in 2-D."""
        step = self.patch_size if self._vit else 16
        img_size = check_img_size(img_size, step)
        if self._vit:
            model = self.model
            old_grid = tuple(model.patch_embed.grid_size)
            new_grid = (img_size[0] // self.patch_size, img_size[1] // self.patch_size)
            if new_grid != old_grid:
                prefix = 0 if getattr(model, "no_embed_class", False) else int(model.num_prefix_tokens)
                with torch.no_grad():
                    resized = resample_pos_embed(
                        model.pos_embed.data, new_grid, old_grid, num_prefix_tokens=prefix
                    )
                model.pos_embed = nn.Parameter(resized, requires_grad=model.pos_embed.requires_grad)
            model.patch_embed.set_input_size(img_size=img_size)
        self.model.img_size = img_size
        if isinstance(getattr(self.model, "pretrained_cfg", None), dict):
            self.model.pretrained_cfg["input_size"] = (3, *img_size)
        self.img_size = img_size

    def extra_repr(self) -> str:
        return f"name={self.name!r}, arch={self.arch}, img_size={self.img_size}, digest={self.digest}"

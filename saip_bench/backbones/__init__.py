"""SAIP backbones built through timm, and the one feature interface every task uses.

Importing this package registers ``saip_vit_tiny_patch16`` and ``saip_tiny_vit_5m`` with timm.
"""

from saip_bench.backbones import tiny_vit as tiny_vit  # noqa: F401  (registers the timm entrypoint)
from saip_bench.backbones import vit as vit  # noqa: F401  (registers the timm entrypoint)
from saip_bench.backbones.pos_embed import resample_pos_embed
from saip_bench.backbones.spec import create_model, load_backbone, saip_arch_names
from saip_bench.backbones.wrapper import Backbone
from saip_bench.checkpoints import read_backbone_checkpoint, save_backbone

__all__ = [
    "Backbone",
    "create_model",
    "load_backbone",
    "read_backbone_checkpoint",
    "resample_pos_embed",
    "saip_arch_names",
    "save_backbone",
]

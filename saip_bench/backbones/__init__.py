"""SAIP backbones built through timm, and the one feature interface every task uses.

Importing this package registers ``saip_vit_tiny_patch16`` and ``saip_tiny_vit_5m`` with timm.

Layering: this package holds the networks (architectures, ``pos_embed`` resampling, the ``Backbone``
wrapper); :mod:`saip_bench.checkpoints` (weights on disk) sits above it and imports from it. Nothing here
imports the checkpoint layer at module level: ``load_backbone``, which needs both, imports it when called.
The checkpoint functions are imported from ``saip_bench.checkpoints`` (re-exporting them here made
``import saip_bench.checkpoints`` circular in a fresh process).
"""

from saip_bench.backbones import tiny_vit as tiny_vit  # noqa: F401  (registers the timm entrypoint)
from saip_bench.backbones import vit as vit  # noqa: F401  (registers the timm entrypoint)
from saip_bench.backbones.pos_embed import resample_pos_embed
from saip_bench.backbones.spec import create_model, load_backbone, saip_arch_names
from saip_bench.backbones.wrapper import Backbone

__all__ = [
    "Backbone",
    "create_model",
    "load_backbone",
    "resample_pos_embed",
    "saip_arch_names",
]

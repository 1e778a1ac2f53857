"""Backbone checkpoints: our safetensors + JSON format; strict import of SAIPv1 / MAE / DINO / timm files."""

from saip_bench.checkpoints.foreign import (
    checkpoint_filter_fn,
    extract_backbone,
    guess_arch,
    load_state_strict,
    read_weights_file,
)
from saip_bench.checkpoints.format import (
    checkpoint_paths,
    is_saip_checkpoint,
    read_backbone_checkpoint,
    save_backbone,
    state_digest,
)
from saip_bench.checkpoints.loader import FoundCheckpoint, LoadReport, load_weights_into, read_any_checkpoint

__all__ = [
    "FoundCheckpoint",
    "LoadReport",
    "checkpoint_filter_fn",
    "checkpoint_paths",
    "extract_backbone",
    "guess_arch",
    "is_saip_checkpoint",
    "load_state_strict",
    "load_weights_into",
    "read_any_checkpoint",
    "read_backbone_checkpoint",
    "read_weights_file",
    "save_backbone",
    "state_digest",
]

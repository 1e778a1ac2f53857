"""One loader for every checkpoint: detect the layout, pick the backbone, fit the grid, load strictly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saip_bench.checkpoints.foreign import (
    checkpoint_filter_fn,
    drop_classifier,
    extract_backbone,
    extract_mm_backbone,
    guess_arch,
    load_state_strict,
    read_weights_file,
)
from saip_bench.checkpoints.format import is_saip_checkpoint, read_backbone_checkpoint, state_digest
from saip_bench.mm.checkpoint import is_mm_checkpoint, read_mm_state_dict


@dataclass
class FoundCheckpoint:
    """A backbone state dict read from any supported file, with what is known about it."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    layout: str  # saip | saipv1 | dino | mae | timm | openmmlab
    method: str
    arch: str
    old_grid: tuple[int, int] | None = None
    branch: str | None = None
    dropped: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What :func:`load_weights_into` did."""

    found: FoundCheckpoint
    loaded: list[str]
    digest: str

    @property
    def layout(self) -> str:
        return self.found.layout

    def meta_for_backbone(self) -> dict[str, Any]:
        """The facts a :class:`~saip_bench.backbones.Backbone` carries in ``.meta``."""
        skip = ("weights_sha256", "format", "format_version", "img_size")
        meta = {k: v for k, v in self.found.meta.items() if k not in skip}
        if "img_size" in self.found.meta:  # the size it was saved at; the Backbone's own is .img_size
            meta["checkpoint_img_size"] = list(self.found.meta["img_size"])
        meta.update(
            arch=meta.get("arch", self.found.arch),
            method=meta.get("method", self.found.method),
            source=meta.get("source") or str(self.found.path),
            format=self.found.layout,
            path=str(self.found.path),
        )
        if self.found.branch:
            meta["branch"] = self.found.branch
        return meta


def read_any_checkpoint(path: str | Path, *, branch: str = "teacher") -> FoundCheckpoint:
    """Read ours (``x.safetensors`` + ``x.json``) or a foreign file and return its backbone weights.

    An OpenMMLab checkpoint (told from its pickle, see :func:`saip_bench.mm.checkpoint.is_mm_checkpoint`)
    is read with the restricted unpickler, which runs nothing the file asks for; every other torch file
    with ``weights_only=True``.

    Raises:
        CheckpointError: Unreadable file or no backbone inside.
    """
    path = Path(path)
    if is_saip_checkpoint(path):
        state, meta = read_backbone_checkpoint(path)
        patch = meta.get("patch_size")
        grid = (meta["img_size"][0] // patch, meta["img_size"][1] // patch) if patch else None
        return FoundCheckpoint(
            path, state, "saip", str(meta.get("method", "unknown")), meta["arch"], grid, meta=meta
        )
    if is_mm_checkpoint(path):
        ext = extract_mm_backbone(read_mm_state_dict(path), source=str(path))
    else:
        ext = extract_backbone(read_weights_file(path), branch=branch, source=str(path))
    return FoundCheckpoint(
        path,
        ext.state_dict,
        ext.layout,
        ext.method,
        guess_arch(ext.state_dict),
        None,
        ext.branch,
        ext.dropped,
    )


def load_weights_into(
    model: nn.Module,
    checkpoint: str | Path | FoundCheckpoint,
    *,
    arch: str | None = None,
    branch: str = "teacher",
    allow_missing: Iterable[str] = (),
    allow_unexpected: Iterable[str] = (),
) -> LoadReport:
    """Load a checkpoint's backbone into a timm ``model`` strictly, resampling ``pos_embed`` in 2-D.

    Args:
        model: The module, built at the image size it will run at.
        checkpoint: A path (any supported layout) or what :func:`read_any_checkpoint` returned.
        arch: The model's architecture name, for messages.
        branch: ``teacher`` or ``student`` of a SAIPv1/DINO file.
        allow_missing: fnmatch patterns of model keys the checkpoint may lack.
        allow_unexpected: fnmatch patterns of checkpoint keys to ignore.

    Returns:
        The report: layout, keys loaded and the weights' digest (independent of file format and grid).

    Raises:
        CheckpointError: Missing, unexpected or mis-shaped keys, naming them (or both widths).
    """
    found = (
        checkpoint
        if isinstance(checkpoint, FoundCheckpoint)
        else read_any_checkpoint(checkpoint, branch=branch)
    )
    source = str(found.path)
    digest = state_digest(drop_classifier(dict(found.state_dict), model))
    state = checkpoint_filter_fn(found.state_dict, model, old_grid=found.old_grid, source=source)
    loaded = load_state_strict(
        model,
        state,
        source=source,
        arch=arch or found.arch,
        allow_missing=allow_missing,
        allow_unexpected=allow_unexpected,
    )
    return LoadReport(found, loaded, digest)

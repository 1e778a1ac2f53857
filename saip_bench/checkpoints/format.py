"""Our backbone checkpoint format: ``<stem>.safetensors`` (weights) + ``<stem>.json`` (metadata).

Weights are the timm module's own state dict (no prefixes), so ``timm.create_model(arch)`` loads them
directly. The JSON records what the weights are and where they came from; the weights' SHA-256 is
checked on every read so a sidecar never describes other weights than its own.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saip_bench.errors import CheckpointError
from saip_bench.io import atomic_write_bytes, atomic_write_json, sha256_file

FORMAT_NAME = "saip-backbone"
FORMAT_VERSION = 1


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The ``(weights, metadata)`` pair for ``path`` given as ``x.safetensors``, ``x.json`` or ``x``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def is_saip_checkpoint(path: str | Path) -> bool:
    """True when ``path`` names one of our checkpoints (weights with a JSON sidecar in our format)."""
    weights, meta = checkpoint_paths(path)
    if not (weights.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """Short digest of a state dict's names, dtypes, shapes and values, independent of the file format.

    A foreign checkpoint and its ``saip convert`` output (same weights) therefore share one digest.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(state_dict[key].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def _module_facts(model: nn.Module) -> dict[str, Any]:
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is None:
        patch = getattr(getattr(model, "patch_embed", None), "stride", None)
    if isinstance(patch, (tuple, list)):
        patch = int(patch[0])
    return {"patch_size": patch, "embed_dim": int(getattr(model, "num_features", 0)) or None}


def unwrap_module(model: nn.Module) -> nn.Module:
    """The timm module inside a Backbone, (Distributed)DataParallel or torch.compile wrapper."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "model") and hasattr(model, "forward_maps"):  # our Backbone wrapper
            model = model.model
        else:
            return model


def _check_grid(module: nn.Module, img_size: tuple[int, int]) -> None:
    pos, patch_embed = getattr(module, "pos_embed", None), getattr(module, "patch_embed", None)
    grid = getattr(patch_embed, "grid_size", None)
    if pos is None or grid is None:
        return
    patch = patch_embed.patch_size
    if (img_size[0] // patch[0], img_size[1] // patch[1]) != tuple(grid):
        # The metadata must describe pos_embed's layout, or a later load would resample it wrongly.
        raise ValueError(f"img_size {tuple(img_size)} does not match the model's {tuple(grid)} patch grid")


def save_backbone(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    img_size: tuple[int, int],
    method: str,
    step: int | None,
    source: str,
    config_digest: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights as ``<path>`` (.safetensors) and its metadata as ``<path stem>.json``.

    Both files are written atomically, weights first; the metadata carries the weights' SHA-256.

    Args:
        path: Target weights file; ``.safetensors`` is appended when missing.
        model: A timm backbone module, or a Backbone / DDP / compiled wrapper of one (saves the timm module).
        arch: timm architecture name that rebuilds the module (e.g. ``saip_vit_tiny_patch16``).
        img_size: ``(H, W)`` the position embedding is laid out for.
        method: Pretraining method (``saip``, ``mae``, ``dino``, ``supervised``, ``random``, ...).
        step: Training step the weights come from, if any.
        source: Where the weights came from (a run directory, a converted file).
        config_digest: Digest of the resolved config that produced the weights.
        extra: Further JSON-serialisable facts, stored under ``"extra"``.

    Returns:
        The weights path.
    """
    from safetensors.torch import save as st_save

    from saip_bench import __version__

    module = unwrap_module(model)
    _check_grid(module, img_size)
    weights, meta_path = checkpoint_paths(path)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    # One header key: safetensors writes several in hash order, so identical weights gave different bytes.
    blob = st_save(state, metadata={FORMAT_NAME: json.dumps({"arch": arch}, sort_keys=True)})
    atomic_write_bytes(weights, blob)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "img_size": [int(img_size[0]), int(img_size[1])],
        **_module_facts(module),
        "method": method,
        "step": step,
        "source": source,
        "config_digest": config_digest,
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": sha256_file(weights),
        "state_digest": state_digest(state),
        "num_params": int(sum(v.numel() for v in state.values())),
        "extra": extra or {},
    }
    atomic_write_json(meta_path, meta)
    return weights


def read_backbone_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read one of our checkpoints: ``(state_dict, metadata)``, weights on the CPU.

    Raises:
        CheckpointError: A file is missing, unreadable, not our format, or the weights do not match the
            SHA-256 its metadata records.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, meta_path = checkpoint_paths(path)
    for needed in (weights, meta_path):
        if not needed.is_file():
            raise CheckpointError(f"{needed}: missing (a saip backbone is <stem>.safetensors + <stem>.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{meta_path}: unreadable metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{meta_path}: not a {FORMAT_NAME} metadata file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: format version {meta.get('format_version')} is newer than this saip-bench "
            f"reads ({FORMAT_VERSION}); upgrade saip-bench"
        )
    for key in ("arch", "img_size"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: metadata lacks {key!r}")
    recorded = meta.get("weights_sha256")
    if recorded and sha256_file(weights) != recorded:
        raise CheckpointError(f"{weights}: weights do not match the sha256 recorded in {meta_path.name}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from None
    return state, meta

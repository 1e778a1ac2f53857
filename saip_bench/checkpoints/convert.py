"""Convert any supported checkpoint (SAIPv1, MAE, DINO, timm, OpenMMLab, ours) into our format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from saip_bench.backbones.pos_embed import infer_grid
from saip_bench.checkpoints.format import checkpoint_paths, save_backbone
from saip_bench.checkpoints.loader import FoundCheckpoint, load_weights_into, read_any_checkpoint
from saip_bench.errors import ConfigError

DEFAULT_IMG_SIZE = (256, 128)


@dataclass
class ConvertReport:
    """What :func:`convert_checkpoint` found and wrote."""

    layout: str
    method: str
    arch: str
    branch: str | None
    img_size: tuple[int, int]
    keys_loaded: int
    keys_dropped: list[str]
    weights: Path
    metadata: Path
    digest: str


def parse_img_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> ``(256, 128)`` (height x width).

    Raises:
        ConfigError: Not two positive integers separated by ``x``.
    """
    parts = text.lower().replace("*", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) <= 0:
        raise ConfigError(f"image size {text!r} is not HEIGHTxWIDTH, e.g. 256x128")
    return size  # type: ignore[return-value]


def _native_img_size(found: FoundCheckpoint, patch: int) -> tuple[int, int]:
    """The input size the checkpoint's pos_embed was trained for, when it can be told."""
    if found.layout == "saip":
        return tuple(found.meta["img_size"])
    pos = found.state_dict.get("pos_embed")
    if pos is None or pos.ndim != 3:
        return DEFAULT_IMG_SIZE
    prefix = 1 if "cls_token" in found.state_dict else 0
    grid = infer_grid(pos.shape[1] - prefix, (DEFAULT_IMG_SIZE[0] // patch, DEFAULT_IMG_SIZE[1] // patch))
    return grid[0] * patch, grid[1] * patch


def _strip_module(key: str) -> str:
    """``module.csr_decoder.blocks.0.w`` -> ``csr_decoder``: a short summary of what was dropped."""
    parts = [p for p in key.split(".") if p not in ("module", "backbone")]
    return parts[0] if parts else key


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    arch: str | None = None,
    img_size: tuple[int, int] | None = None,
    branch: str = "teacher",
) -> ConvertReport:
    """Read ``src`` in any supported layout, load it strictly and write ``dst`` in our format.

    Args:
        src: The checkpoint to convert.
        dst: Target weights path (``.safetensors`` is appended when missing); ``<stem>.json`` goes beside it.
        arch: timm architecture (default: recorded in ours, otherwise guessed from the keys).
        img_size: ``(H, W)`` to lay ``pos_embed`` out for (default: the checkpoint's own, else 256x128).
        branch: ``teacher`` or ``student`` of a SAIPv1/DINO file.

    Raises:
        CheckpointError: Unreadable, unrecognised or mismatched weights; nothing is written then.
    """
    from saip_bench.backbones.spec import create_model

    src = Path(src)
    found = read_any_checkpoint(src, branch=branch)
    arch = arch or found.arch
    probe = create_model(arch, DEFAULT_IMG_SIZE)
    patch = getattr(getattr(probe, "patch_embed", None), "patch_size", (16,))[0]
    if img_size is None:
        img_size = _native_img_size(found, int(patch)) if hasattr(probe, "pos_embed") else DEFAULT_IMG_SIZE
    model = create_model(arch, img_size) if tuple(img_size) != DEFAULT_IMG_SIZE else probe
    report = load_weights_into(model, found, arch=arch)
    weights, meta = checkpoint_paths(dst)
    step = found.meta.get("step") if found.layout == "saip" else None
    save_backbone(
        weights,
        model,
        arch=arch,
        img_size=img_size,
        method=found.method,
        step=step,
        source=str(found.meta.get("source")) if found.layout == "saip" else str(src.resolve()),
        config_digest=found.meta.get("config_digest"),
        extra={
            "converted_from": found.layout,
            "branch": found.branch,
            "dropped_keys": len(found.dropped),
            "dropped_modules": sorted({_strip_module(k) for k in found.dropped}),
        },
    )
    return ConvertReport(
        found.layout,
        found.method,
        arch,
        found.branch,
        tuple(img_size),
        len(report.loaded),
        found.dropped,
        weights,
        meta,
        report.digest,
    )

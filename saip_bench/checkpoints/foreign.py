"""Import of the checkpoints users already have: SAIPv1, MAE, DINO and plain timm state dicts.

Each layout is detected from the file's structure, never from its name:

* SAIPv1 (stoa-xh91/SAIPv1 ``checkpoint*.pth``): ``{"student", "teacher", "optimizer", "epoch", "args",
  "csm_loss"}``; each branch is the state dict of a wrapper whose ViT is under ``backbone.`` (the student
  also under DistributedDataParallel's ``module.``), next to the pretraining-only ``csr_decoder.``,
  ``csm_decoder.``, ``css_decoder.`` modules and the backbone's own ``inter_norm`` (the LayerNorm of the
  intermediate tokens the pixel objectives use). Backbone key names match timm's VisionTransformer.
* DINO: ``{"student", "teacher", ...}`` with ``backbone.`` and the projection ``head.``.
* MAE: ``{"model": ...}`` with the encoder at the top level and ``decoder_*`` / ``mask_token`` beside it.
* timm: a flat state dict (``.pth``/``.bin``/``.safetensors``), possibly under ``state_dict`` or ``module.``.
* OpenMMLab (mmengine ``save_checkpoint``, e.g. an mmpose or mmdet model): ``{"meta", "state_dict",
  "message_hub", "optimizer"}`` with the model's ``backbone.`` beside its ``neck.`` / ``head.``; ``meta`` and
  ``message_hub`` pickle numpy and mmengine objects, so the file is read by the restricted unpickler of
  :func:`saip_bench.mm.checkpoint.read_mm_state_dict` (see :func:`extract_mm_backbone`).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saip_bench.backbones.pos_embed import infer_grid, resample_pos_embed
from saip_bench.errors import CheckpointError

log = logging.getLogger(__name__)

BRANCHES = ("teacher", "student")
SAIPV1_PRETRAIN_MODULES = ("csr_decoder.", "csm_decoder.", "css_decoder.")
# Keys of each layout that exist only for pretraining; derived buffers are dropped from every layout.
PRETRAIN_ONLY_KEYS = {
    "saipv1": ("inter_norm.*",),  # LayerNorm of the intermediate tokens the pixel objectives read
    "mae": ("mask_token", "decoder_*"),
}
DERIVED_KEYS = ("*.attention_bias_idxs",)  # TinyViT's index buffer, rebuilt from the window size
# Classes a training script may have pickled beside the tensors; plain data, no code runs on load.
_SAFE_GLOBALS = [argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath]


@dataclass
class ForeignCheckpoint:
    """The backbone tensors found in a file and how they were found."""

    state_dict: dict[str, torch.Tensor]
    layout: str  # saip | saipv1 | dino | mae | timm
    method: str  # the pretraining method the layout implies
    branch: str | None = None
    dropped: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def read_weights_file(path: str | Path) -> Mapping[str, Any]:
    """Load a ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` file onto the CPU without running any code.

    torch files are read with ``weights_only=True``; only a few plain-data classes (argparse.Namespace,
    paths) are allowed beside tensors.

    Raises:
        CheckpointError: The file is missing, corrupt, or pickles anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    is_safetensors = path.suffix == ".safetensors" or (len(head) > 9 and head[8:9] == b"{")
    # torch.save writes a zip archive (legacy files: a pickle, first byte 0x80); anything else would get
    # torch's generic "weights only load failed" advice, which is wrong for a file that is simply not one.
    if not is_safetensors and not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):
        raise CheckpointError(
            f"{path}: not a checkpoint (neither a torch zip archive, a pickle nor safetensors)"
        )
    try:
        if is_safetensors:
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt archives raise many types; all mean "cannot read this file"
        text = str(err).strip()
        unsafe = re.search(r"GLOBAL ([\w.]+)", text)
        if unsafe:
            raise CheckpointError(
                f"{path}: unreadable checkpoint (it pickles {unsafe.group(1)}, which weights_only loading "
                "refuses; re-save just its state dict of tensors)"
            ) from None
        first = text.splitlines()[0] if text else type(err).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint ({first[:200]})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    return None


def _strip(key: str, prefixes: Iterable[str]) -> str:
    changed = True
    while changed:  # SAIPv1's student is "module.backbone.", other tools write "backbone.module."
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _drop(state: dict[str, torch.Tensor], patterns: Iterable[str]) -> tuple[dict, list[str]]:
    patterns = list(patterns)
    kept = {k: v for k, v in state.items() if not any(fnmatch(k, p) for p in patterns)}
    return kept, sorted(set(state) - set(kept))


def _backbone_branch(branch_sd: dict[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """Keep what sits under ``backbone.`` (after ``module.``); everything else is a pretraining module."""
    out, dropped = {}, []
    for key, value in branch_sd.items():
        bare = _strip(key, ("module.",))
        if bare.startswith("backbone."):
            out[_strip(bare, ("backbone.", "module."))] = value
        else:
            dropped.append(key)
    return out, dropped


def extract_backbone(
    raw: Mapping[str, Any], *, branch: str = "teacher", source: str = "checkpoint"
) -> ForeignCheckpoint:
    """Find the backbone state dict in a loaded checkpoint object and name its layout.

    Args:
        raw: What :func:`read_weights_file` returned.
        branch: ``teacher`` (default; the EMA weights SAIP and DINO evaluate) or ``student``.
        source: Name used in error messages.

    Raises:
        CheckpointError: Unknown branch, or no backbone tensors in a recognised place.
    """
    if branch not in BRANCHES:
        raise CheckpointError(f"{source}: branch must be one of {', '.join(BRANCHES)}, not {branch!r}")
    branches = {b: _tensor_dict(raw.get(b)) for b in BRANCHES}
    if any(sd is not None for sd in branches.values()):
        chosen = branches[branch]
        if chosen is None:
            present = ", ".join(k for k, v in branches.items() if v)
            raise CheckpointError(f"{source}: has no {branch!r} weights (found: {present})")
        bare_keys = [_strip(k, ("module.",)) for k in chosen]
        saipv1 = any(k.startswith(SAIPV1_PRETRAIN_MODULES) or ".inter_norm." in f".{k}" for k in bare_keys)
        layout = "saipv1" if saipv1 else "dino"
        if not any(k.startswith("backbone.") for k in bare_keys):
            raise CheckpointError(f"{source}: {branch!r} weights hold no 'backbone.' keys")
        state, dropped = _backbone_branch(chosen)
        state, more = _drop(state, (*PRETRAIN_ONLY_KEYS.get(layout, ()), *DERIVED_KEYS))
        return ForeignCheckpoint(state, layout, "saip" if saipv1 else "dino", branch, dropped + more)
    wrapped = [(w, sd) for w in ("model", "state_dict", "model_ema") if (sd := _tensor_dict(raw.get(w)))]
    wrapper, inner = wrapped[0] if wrapped else (None, _tensor_dict(raw))
    layout = "mae" if wrapper == "model" else "timm"
    if inner is None:
        keys = ", ".join(list(map(str, raw))[:8])
        raise CheckpointError(f"{source}: no backbone state dict found (top-level keys: {keys})")
    state = {_strip(k, ("module.",)): v for k, v in inner.items()}
    if layout == "mae" and not any(k.startswith("decoder_") or k == "mask_token" for k in state):
        layout = "timm"  # DeiT-style {"model": ...} supervised checkpoints
    if layout == "timm" and any(k.startswith("inter_norm.") for k in state) and "cls_token" in state:
        layout = "saipv1"  # a SAIPv1 backbone saved on its own (SAIPViT.state_dict())
    state, dropped = _drop(state, (*PRETRAIN_ONLY_KEYS.get(layout, ()), *DERIVED_KEYS))
    method = {"mae": "mae", "saipv1": "saip"}.get(layout, "unknown")
    return ForeignCheckpoint(state, layout, method, None, dropped)


#: How :class:`saip_bench.mm.backbone.SaipMMBackbone` nests the timm model under an mm model's ``backbone.``.
SAIP_MM_BACKBONE_PREFIX = "backbone.model."


def extract_mm_backbone(
    state: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
) -> ForeignCheckpoint:
    """The backbone of an OpenMMLab model's state dict: the tensors under ``backbone.``, prefix removed.

    A model built with the suite's own ``SaipBackbone`` (saip_bench.mm.backbone) holds the timm network at
    ``backbone.backbone.model.``; then only that is kept (its simple-pyramid ``neck`` is a task module). Any
    other mm backbone keeps its own key names, and strict loading names whatever does not fit.

    Raises:
        CheckpointError: No ``backbone.`` key (the message lists the prefixes there are).
    """
    inner = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if not inner:
        heads = ", ".join(sorted({k.split(".", 1)[0] + "." for k in state})[:8])
        raise CheckpointError(f"{source}: OpenMMLab checkpoint without 'backbone.' weights (keys: {heads})")
    dropped = [k for k in state if not k.startswith("backbone.")]
    nested = SAIP_MM_BACKBONE_PREFIX
    if any(k.startswith(nested) for k in inner):
        dropped += [f"backbone.{k}" for k in inner if not k.startswith(nested)]
        inner = {k[len(nested) :]: v for k, v in inner.items() if k.startswith(nested)}
    kept, derived = _drop(inner, DERIVED_KEYS)
    return ForeignCheckpoint(kept, "openmmlab", "unknown", None, sorted(dropped) + derived)


def guess_arch(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The SAIP entrypoint a backbone state dict is meant for (TinyViT stages or ViT blocks).

    A ViT of another width still maps to the ViT entrypoint, so strict loading can name both shapes.
    """
    if any(k.startswith("stages.") for k in state_dict) and "patch_embed.conv1.conv.weight" in state_dict:
        return "saip_tiny_vit_5m"
    return "saip_vit_tiny_patch16"


def drop_classifier(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Remove a classifier's weights (e.g. an ImageNet ``head.``) that the headless ``model`` lacks."""
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "head"
    target = model.state_dict()
    for key in [k for k in state if k.startswith(f"{classifier}.") and k not in target]:
        del state[key]
    return state


def _prefix_tokens(model: nn.Module) -> int:
    return 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))


def checkpoint_filter_fn(
    state_dict: Mapping[str, Any],
    model: nn.Module,
    *,
    branch: str = "teacher",
    old_grid: tuple[int, int] | None = None,
    source: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Unwrap a checkpoint, strip its prefixes and fit ``pos_embed`` to ``model``'s grid (timm's hook).

    Also drops the classifier a headless model lacks. Shapes are left alone otherwise, so strict
    loading reports any other mismatch.

    Args:
        state_dict: A raw checkpoint object or a plain state dict.
        model: The timm module the weights are for.
        branch: Which of a student/teacher pair to take.
        old_grid: Patch grid of the checkpoint's ``pos_embed``; inferred from its length when None.
        source: Name used in error messages.
    """
    state = drop_classifier(extract_backbone(state_dict, branch=branch, source=source).state_dict, model)
    target = model.state_dict()
    pos = state.get("pos_embed")
    if pos is not None and "pos_embed" in target and pos.ndim == 3:
        want = target["pos_embed"]
        grid = tuple(model.patch_embed.grid_size)
        prefix = _prefix_tokens(model)
        if pos.shape[-1] == want.shape[-1]:  # another width is left for strict loading to report
            if old_grid is not None:
                old = tuple(old_grid)
            elif pos.shape[1] == want.shape[1]:
                old = grid
            else:
                old = infer_grid(pos.shape[1] - prefix, grid, source=source)
            if old != grid:
                log.info("%s: resampling pos_embed from a %dx%d to a %dx%d grid", source, *old, *grid)
                state["pos_embed"] = resample_pos_embed(pos, grid, old, num_prefix_tokens=prefix)
    return state


def load_state_strict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    arch: str | None = None,
    allow_missing: Iterable[str] = (),
    allow_unexpected: Iterable[str] = (),
) -> list[str]:
    """Load ``state_dict`` into ``model``; any missing, unexpected or mis-shaped key is an error.

    Args:
        model: The module to fill.
        state_dict: Filtered backbone weights.
        source: The file, for messages.
        arch: The model's architecture name, for messages.
        allow_missing: fnmatch patterns of model keys the checkpoint may lack (left as initialised).
        allow_unexpected: fnmatch patterns of checkpoint keys to ignore.

    Returns:
        The keys loaded.

    Raises:
        CheckpointError: One line naming the file and every offending key (or both shapes).
    """
    target = model.state_dict()
    allow_missing, allow_unexpected = list(allow_missing), list(allow_unexpected)
    missing = [k for k in target if k not in state_dict and not any(fnmatch(k, p) for p in allow_missing)]
    unexpected = [
        k for k in state_dict if k not in target and not any(fnmatch(k, p) for p in allow_unexpected)
    ]
    what = f"the {arch} backbone" if arch else "the backbone"
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_short(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_short(unexpected)}")
        raise CheckpointError(f"{source}: does not fit {what}: " + "; ".join(parts))
    shared = [k for k in state_dict if k in target]
    wrong = [k for k in shared if tuple(state_dict[k].shape) != tuple(target[k].shape)]
    if wrong:
        first = wrong[0]
        have, want = tuple(state_dict[first].shape), tuple(target[first].shape)
        width = _width(state_dict, target)
        lead = f"a {width[0]}-wide checkpoint cannot load into {what} of width {width[1]}: " if width else ""
        raise CheckpointError(
            f"{source}: {lead}{len(wrong)} tensor(s) of another shape, e.g. {first}: checkpoint "
            f"{list(have)} vs model {list(want)}"
        )
    model.load_state_dict({k: state_dict[k] for k in shared}, strict=False)
    return shared


def _width(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> tuple[int, int] | None:
    for key in ("cls_token", "norm.weight", "head.norm.weight"):
        if key in state and key in target and state[key].shape[-1] != target[key].shape[-1]:
            return int(state[key].shape[-1]), int(target[key].shape[-1])
    return None


def _short(keys: list[str], limit: int = 24) -> str:
    """Name every key, collapsing per-block repeats (``blocks.{0..11}.mlp.fc1.weight``) to stay one line."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        match = re.match(r"^(.*?\.)(\d+)(\..*)$", key)
        pattern, idx = (f"{match.group(1)}{{}}{match.group(3)}", match.group(2)) if match else (key, "")
        groups.setdefault(pattern, []).append(idx)
    names = [
        p if "{}" not in p else p.format(ix[0] if len(ix) == 1 else "{" + ",".join(ix) + "}")
        for p, ix in groups.items()
    ]
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more

"""Optimizer parameter groups: one weight-decay rule and timm's layer grouping for layer-wise lr decay.

Pretraining and every task split parameters with :func:`no_weight_decay`. Layer-wise lr decay reads the
layers from the backbone's own timm ``group_matcher`` (what ``timm.optim.param_groups_layer_decay`` uses),
so it works for every timm backbone the suite registers: a ViT (embeddings, ``blocks.i``, final norm) and
TinyViT (stem, ``stages.i.blocks.j``, head norm) alike, where a regex on ``blocks.N`` skipped TinyViT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from saip_bench.errors import ConfigError

# timm's VisionTransformer.group_matcher(coarse=False), for ViT-shaped modules without the method.
_VIT_MATCHER: dict[str, Any] = {
    "stem": r"^cls_token|reg_token|pos_embed|patch_embed|norm_pre",
    "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
}


#: Hyper-parameters checked wherever they appear in a config, by key name: (lowest value, integer only).
#: A learning rate or weight decay must be a finite number >= 0 (0: an untrained control run, no decay);
#: a batch size or epoch count an integer >= 1; a step count an integer >= 0 (0: the untrained head).
_NUMBER_RULES: dict[str, tuple[float, bool]] = {
    "lr": (0.0, False),
    "blr": (0.0, False),
    "min_lr": (0.0, False),
    "weight_decay": (0.0, False),
    "backbone_lr_mult": (0.0, False),
    "batch_size": (1, True),
    "accum_steps": (1, True),
    "epochs": (1, True),
    "steps": (0, True),
    "max_steps_per_epoch": (1, True),
    "clip_grad": (0.0, False),  # null or 0: no clipping
}


def check_number(value: Any, *, key: str, source: str, minimum: float = 0.0, integer: bool = False) -> None:
    """Raise a :class:`ConfigError` naming ``source`` and ``key`` unless ``value`` is a number >= ``minimum``.

    None passes (a key whose null means "derive it"); a bool never counts as a number.
    """
    if value is None:
        return
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{source}: {key}={value!r}: must be {kind} >= {minimum:g}")


def check_hyperparameters(values: Mapping[str, Any], *, source: str, prefix: str = "") -> None:
    """Check every learning rate, weight decay, batch size, epoch and step count in a (nested) config.

    Keys are matched by name at any depth (``train.lr``, ``linear.lr``, ``loader.batch_size``,
    ``eval.batch_size``, pretraining's ``train.blr``), so a NaN, infinite or negative value is one line
    naming the file (or override) and the key before anything is created, not a torch ``ValueError`` later.

    Args:
        values: the config (or one section of it) as plain containers.
        source: what the values came from (a file path, ``override 'train.lr=nan'``), named first.
        prefix: the dotted path of ``values`` inside the config.

    Raises:
        ConfigError: a value breaks its key's rule.
    """
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            check_hyperparameters(value, source=source, prefix=f"{name}.")
        elif key in _NUMBER_RULES:
            minimum, integer = _NUMBER_RULES[key]
            check_number(value, key=name, source=source, minimum=minimum, integer=integer)


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """The one no-weight-decay rule: biases, norm weights, tokens and position embeddings.

    Every tensor of rank < 2, plus names ending in ``token`` (cls, reg, dist, mask tokens) or ``pos_embed``
    (timm's ``no_weight_decay()`` sets and the BEiT/MAE fine-tuning recipes). Other learned embeddings of
    rank 3, such as the CSR decoder's ``cls_type`` / ``cond_type``, are decayed.
    """
    return param.ndim < 2 or name.endswith(("token", "pos_embed"))


def public_no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """The public SAIPv1 (and MAE / DINO pretraining) rule: 1-D parameters and biases only.

    timm 0.3.2's ``optim_factory.add_weight_decay`` with no skip list: ``len(param.shape) == 1 or
    name.endswith(".bias")``. Tokens and position embeddings (rank 3) ARE decayed, and so would be a 0-D
    parameter (today's timm exempts those too).
    """
    return param.ndim == 1 or name.endswith(".bias")


#: The weight-decay exemption rules by name (``train.wd_exempt`` of pretraining).
WD_EXEMPT_RULES: dict[str, Callable[[str, torch.Tensor], bool]] = {
    "tokens": no_weight_decay,
    "public": public_no_weight_decay,
}


def exempt_rule(name: str) -> Callable[[str, torch.Tensor], bool]:
    """The exemption rule called ``name``.

    Raises:
        ConfigError: no such rule (the message lists the valid names).
    """
    try:
        return WD_EXEMPT_RULES[name]
    except KeyError:
        valid = ", ".join(WD_EXEMPT_RULES)
        raise ConfigError(f"train.wd_exempt={name!r}: expected one of {valid}") from None


def weight_decay_groups(
    modules: Iterable[nn.Module], weight_decay: float, *, exempt: str = "tokens"
) -> list[dict[str, Any]]:
    """Two groups over the trainable parameters of ``modules``: decayed, then undecayed (no lr scaling).

    A parameter shared by two modules is taken once. ``exempt`` names the rule that picks the undecayed
    parameters (:data:`WD_EXEMPT_RULES`): ``"tokens"`` (:func:`no_weight_decay`) or ``"public"``
    (:func:`public_no_weight_decay`); each sees the names relative to its module.

    Raises:
        ConfigError: ``exempt`` names no rule.
    """
    rule = exempt_rule(exempt)
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if rule(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _find_timm_model(model: nn.Module, prefix: str) -> tuple[str, nn.Module] | None:
    """The shallowest module under ``prefix`` that timm can group into layers (its name with a dot)."""
    for name, module in model.named_modules():
        dotted = f"{name}." if name else ""
        if not dotted.startswith(prefix):
            continue
        vit_shaped = all(hasattr(module, a) for a in ("blocks", "patch_embed", "pos_embed"))
        if hasattr(module, "group_matcher") or vit_shaped:
            return dotted, module
    return None


def _own_layer(matcher: dict[str, Any]) -> dict[str, Any]:
    """``matcher`` with timm's "join the previous group" marker replaced by "a group after the others".

    timm folds a ViT's final norm into the last block's group (suffix ``MATCH_PREV_GROUP``); the layer-decay
    recipes (BEiT, MAE) and this suite's numbers give it a layer of its own, at lr scale 1.
    """
    from timm.models._manipulate import MATCH_PREV_GROUP

    after = (MATCH_PREV_GROUP[0] - 1,)
    out: dict[str, Any] = {}
    for key, spec in matcher.items():
        if isinstance(spec, (list, tuple)):
            spec = [(regex, after if suffix == MATCH_PREV_GROUP else suffix) for regex, suffix in spec]
        out[key] = spec
    return out


def layer_ids(module: nn.Module) -> dict[str, int]:
    """Layer index of every parameter of a timm backbone: 0 for the stem, rising to the head.

    Uses the model's ``group_matcher(coarse=False)`` through timm's ``group_parameters`` (for a ViT: the
    embeddings are 0, ``blocks.i`` is ``i + 1`` and the final norm ``depth + 1``; for TinyViT the stem is 0,
    each block of each stage its own layer, a stage's downsampling joins its first block, and the head norm
    comes last). Parameters the matcher does not name (a head) form the last layer.
    """
    from timm.models import group_parameters

    matcher = module.group_matcher(coarse=False) if hasattr(module, "group_matcher") else _VIT_MATCHER
    if not isinstance(matcher, dict):  # a callable matcher: timm's grouping as it stands
        return group_parameters(module, matcher, reverse=True)
    return group_parameters(module, _own_layer(matcher), reverse=True)


def build_param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    layer_decay: float | None = None,
    backbone_lr_mult: float = 1.0,
    backbone_prefix: str = "backbone.",
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with per-group ``lr``, ``weight_decay`` and ``lr_scale``.

    Parameters whose name starts with ``backbone_prefix`` get ``lr * backbone_lr_mult``. With ``layer_decay``
    the backbone's timm model (the shallowest module under the prefix with a ``group_matcher``, or shaped like
    a ViT) is split into layers by :func:`layer_ids`, and layer ``i`` of ``0..L`` is further scaled by
    ``layer_decay ** (L - i)``; backbone parameters outside that model (a neck inside the backbone) count as
    layer ``L``. Weight decay follows :func:`no_weight_decay`. Frozen parameters (``requires_grad`` False)
    are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    layers: dict[str, int] = {}
    max_layer = 0
    if layer_decay is not None and layer_decay != 1.0:
        found = _find_timm_model(model, backbone_prefix)
        if found is not None:
            inner_prefix, inner = found
            layers = {inner_prefix + name: i for name, i in layer_ids(inner).items()}
            max_layer = max(layers.values(), default=0)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in named:
        scale = 1.0
        if name.startswith(backbone_prefix):
            scale = backbone_lr_mult
            if layers:
                scale *= layer_decay ** (max_layer - layers.get(name, max_layer))  # type: ignore[operator]
        wd = 0.0 if no_weight_decay(name, param) else weight_decay
        group = groups.setdefault(
            (scale, wd), {"params": [], "lr": lr * scale, "weight_decay": wd, "lr_scale": scale}
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(
    groups: list[dict[str, Any]],
    *,
    optimizer: str = "adamw",
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
    nesterov: bool = False,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """AdamW or SGD over prepared parameter groups.

    Args:
        groups: parameter groups (each may carry its own ``lr`` / ``weight_decay``).
        optimizer: ``"adamw"`` or ``"sgd"``.
        lr: the default lr of groups without one.
        betas: AdamW betas.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        fused: AdamW's fused kernel (one kernel per step instead of a dozen passes over every parameter)
            where the device and dtype support it, the plain one otherwise.
    """
    for group in groups:  # the last line of defence for a caller that skipped the config checks
        check_number(group.get("lr", lr), key="lr", source="optimizer")
        check_number(group.get("weight_decay", 0.0), key="weight_decay", source="optimizer")
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
        except (RuntimeError, TypeError):  # a device or dtype the fused kernel does not support
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))

"""``train.compile``: ``torch.compile`` of the pretraining model's repeated pieces, in place.

What is compiled is every transformer block (the student's and the teacher's ViT, the CSR decoder, the CSS
decoder's self-attention blocks), the CSS cross-attention block, the CSS mask head and the projection head's
MLP, each with :meth:`torch.nn.Module.compile`. That swaps the module's call for a compiled one and nothing
else: module names, parameters and ``state_dict`` keys stay as they are, so checkpoints, the EMA update, the
export and resuming an uncompiled run are untouched. The meta-architecture's own forward (view grouping,
random draws, the losses) stays eager.

Shapes are dynamic from the first compile: the token counts change from call to call (the rescaled local
views come at four sizes, the CSR view's visible-token count differs per step), and one graph per kind of
call (gradient or not, with or without a padding mask) serves them all instead of a recompile per size.

Measured on the CPU benchmark recipe (ViT-Tiny, batch 8, 2 threads, inductor's C++ backend, compiled and
eager steps alternating in one process): fp32 4-7% faster, bf16 no faster, after 75 s (fp32) and 190 s
(bf16) of compiling in the first steps. Inductor fuses the elementwise work, but the matmuls and the
attention, about two thirds of a CPU step, stay library calls. So ``auto`` compiles on CUDA only.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from saip_bench.errors import ConfigError

log = logging.getLogger(__name__)

#: The values of ``train.compile`` (YAML's true / false arrive as booleans).
COMPILE_CHOICES = ("auto", "true", "false")

# All blocks share one forward (timm's Block.forward): each kind of call is one cache entry of that code.
_RECOMPILE_LIMIT = 64


def resolve_compile(value: object, device: torch.device | str, *, key: str = "train.compile") -> bool:
    """Whether to compile: ``auto`` is on for CUDA and off on the CPU (see the module docstring).

    Raises:
        ConfigError: ``value`` is not auto, true or false.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in COMPILE_CHOICES:
        raise ConfigError(f"{key}={value!r}: expected auto, true or false")
    if text == "auto":
        return torch.device(device).type == "cuda"
    return text == "true"


def compile_targets(model: nn.Module) -> list[nn.Module]:
    """The submodules :func:`compile_model` compiles, outermost first (no module inside another)."""
    from timm.models.vision_transformer import Block

    from saip_bench.pretrain.heads import CSSDecoder, ProjectionHead
    from saip_bench.pretrain.heads.css_decoder import CrossAttentionBlock

    targets: list[nn.Module] = []
    for sub in model.modules():
        if isinstance(sub, (Block, CrossAttentionBlock)):
            targets.append(sub)
        elif isinstance(sub, CSSDecoder):
            targets.append(sub.mask_head)
        elif isinstance(sub, ProjectionHead):
            targets.append(sub.mlp)
    return targets


def compile_model(model: nn.Module, *, backend: str = "inductor", dynamic: bool | None = True) -> int:
    """Compile the repeated pieces of ``model`` (a meta-architecture) in place; returns how many.

    Args:
        model: The module to compile inside (student and teacher alike).
        backend: The ``torch.compile`` backend (``"eager"`` traces without generating code: tests).
        dynamic: ``torch.compile``'s ``dynamic``; True: symbolic token counts from the start.
    """
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
    targets = compile_targets(model)
    for sub in targets:
        sub.compile(backend=backend, dynamic=dynamic)
    log.info("torch.compile (%s backend): %d modules", backend, len(targets))
    return len(targets)

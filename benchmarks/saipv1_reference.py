"""The public SAIPv1 code (stoa-xh91/SAIPv1), patched in a temporary copy to run training steps on the CPU.

``benchmarks/pretrain_step.py --reference DIR`` times it against saip-bench. ``DIR`` is the user's own
checkout of the public code; none of that code is stored in this project. The checkout is copied to a
temporary folder, the lines listed in :data:`PATCHES` are replaced there by exact text substitution (each one
documented with its reason; a line that is not found exactly once is an error, so a checkout that differs
from the one the patches were written for fails loudly instead of running something else), and the patched
copy is imported from that folder.

What runs is the public code's own: ``models_pretrain.csl_vit_tiny_patch16`` for student and teacher, the
``CSMLoss`` and ``cosine_scheduler`` of ``main_pretrain.py``, the weight-decay groups ``main()`` builds, its
``NativeScalerWithGradNormCount`` and ``main_pretrain.train_one_epoch`` itself over a loader of one batch
(forward of teacher and student, the CSM / attention / CSR / CSS losses, backward, the gradient norm, the
AdamW step and the EMA update of the teacher). Only ``main()``'s model and optimiser set-up is re-stated here
(:class:`ReferenceStep`), because ``main()`` also builds a dataset and a process group.

It runs in fp32 whatever saip-bench's precision (its ``torch.cuda.amp.autocast`` only ever did fp16 on CUDA).
Its decoders' attention blocks are the installed timm's ``Block`` (the public code imports timm's class),
which runs fused attention, where timm 0.3.2 (the version the code pins) wrote the softmax out; so the
reference measured here is, if anything, faster than the code as published.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from saip_bench.errors import SaipError

__all__ = ["PATCHES", "Patch", "ReferenceStep", "load_reference", "patch_checkout", "samples_from_batch"]

# The modules the public code imports by bare name; they are loaded from the patched copy only.
_MODULES = ("main_pretrain", "models_pretrain", "pretrain_decoder", "vision_transformer", "tinyvit", "util")


@dataclass(frozen=True)
class Patch:
    """Replace ``old`` by ``new`` in ``file`` of the copy (``old`` must occur exactly once)."""

    file: str
    old: str
    new: str
    why: str


PATCHES: tuple[Patch, ...] = (
    Patch(
        "main_pretrain.py",
        'assert timm.__version__ == "0.3.2"  # version check',
        "pass  # saip-bench: version pin removed",
        "the code pins timm 0.3.2; it runs on the installed timm with the two shims below",
    ),
    Patch(
        "main_pretrain.py",
        "import timm.optim.optim_factory as optim_factory",
        "import types as _types\n"
        "from timm.optim import param_groups_weight_decay as _groups\n"
        "optim_factory = _types.SimpleNamespace(add_weight_decay=_groups)  # saip-bench: renamed in timm",
        "timm >= 0.9 renamed optim_factory.add_weight_decay to param_groups_weight_decay; the rule is the "
        "same (no decay for 1-D parameters and names ending in .bias, decay for everything else)",
    ),
    Patch(
        "main_pretrain.py",
        "from torch.utils.tensorboard import SummaryWriter",
        "SummaryWriter = None  # saip-bench: only main() logs",
        "tensorboard is only used by main(), which is not run; no need to have it installed",
    ),
    Patch(
        "main_pretrain.py",
        "import matplotlib.pyplot as plt",
        "plt = None  # saip-bench: unused",
        "imported but never used; no need to have matplotlib installed",
    ),
    Patch(
        "main_pretrain.py",
        "samples = [sms.cuda(non_blocking=True) for sms in samples]",
        "samples = [sms.to(device, non_blocking=True) for sms in samples]",
        ".cuda() fails without a GPU; the batch goes to train_one_epoch's own device argument",
    ),
    Patch(
        "main_pretrain.py",
        "with torch.cuda.amp.autocast():",
        "with torch.autocast(device.type, enabled=False):  # saip-bench: fp32",
        "CUDA fp16 autocast; on the CPU it was a no-op with a warning, now explicitly fp32",
    ),
    Patch(
        "main_pretrain.py",
        "zip(student.module.parameters(), teacher_without_ddp.parameters())",
        'zip(getattr(student, "module", student).parameters(), teacher_without_ddp.parameters())',
        "the EMA reads student.module, which exists only under DistributedDataParallel",
    ),
    Patch(
        "main_pretrain.py",
        "torch.cuda.synchronize()",
        "pass  # saip-bench: CPU ops are synchronous",
        "fails without a GPU; CPU work has finished when the call returns",
    ),
    Patch(
        "main_pretrain.py",
        "        dist.all_reduce(batch_center)\n"
        "        batch_center = batch_center / (len(teacher_output) * dist.get_world_size())",
        "        _world = 1  # saip-bench: one process without a process group\n"
        "        if dist.is_available() and dist.is_initialized():\n"
        "            dist.all_reduce(batch_center)\n"
        "            _world = dist.get_world_size()\n"
        "        batch_center = batch_center / (len(teacher_output) * _world)",
        "CSMLoss.update_center all-reduces without checking for a process group; one process has none",
    ),
    Patch(
        "util/misc.py",
        "from torch._six import inf",
        "from math import inf  # saip-bench: torch._six is gone",
        "torch 2 removed torch._six; inf is the float infinity",
    ),
    Patch(
        "util/misc.py",
        "self._scaler = torch.cuda.amp.GradScaler()",
        "self._scaler = torch.amp.GradScaler(enabled=False)  # saip-bench: fp32, no loss scaling",
        "the CUDA loss scaler; in fp32 it is disabled (what torch did on the CPU, minus the warning): "
        "scale() returns the loss, step() calls optimizer.step()",
    ),
    Patch(
        "pretrain_decoder.py",
        "from timm.models.vision_transformer import Block",
        "from timm.models.vision_transformer import Block as _TimmBlock\n\n\n"
        "def Block(*args, qk_scale=None, **kwargs):  # saip-bench: timm >= 0.9 has no qk_scale\n"
        "    assert qk_scale is None\n"
        "    return _TimmBlock(*args, **kwargs)",
        "timm's Block lost its qk_scale argument; the code passes qk_scale=None, i.e. the default scale",
    ),
)


def patch_checkout(src: Path, dst: Path, patches: Sequence[Patch] = PATCHES) -> None:
    """Copy the checkout ``src`` to ``dst`` (a new folder) and apply ``patches`` to the copy.

    Raises:
        SaipError: ``src`` is not a SAIPv1 checkout, or a patched line is not found exactly once in it.
    """
    src = Path(src)
    if not (src / "main_pretrain.py").is_file() or not (src / "models_pretrain.py").is_file():
        raise SaipError(
            f"{src}: not a checkout of stoa-xh91/SAIPv1 (no main_pretrain.py / models_pretrain.py)"
        )
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"))
    for p in patches:
        path = Path(dst) / p.file
        text = path.read_text(encoding="utf-8")
        n = text.count(p.old)
        if n != 1:
            first = p.old.splitlines()[0].strip()
            raise SaipError(
                f"{src / p.file}: the line {first!r} occurs {n} times, expected once "
                "(a different version of the public code?)"
            )
        path.write_text(text.replace(p.old, p.new), encoding="utf-8")


@dataclass
class Reference:
    """The patched public modules."""

    main_pretrain: ModuleType
    models_pretrain: ModuleType


@contextlib.contextmanager
def load_reference(src: Path, patches: Sequence[Patch] = PATCHES) -> Iterator[Reference]:
    """Patch a copy of the checkout ``src`` (with ``patches``) and import it; the copy is removed on exit.

    The public modules have generic names (``util``, ``vision_transformer``, ...): any module of those names
    imported before is set aside during the import and put back afterwards, and the public ones are taken out
    of ``sys.modules`` again, so nothing else in the process resolves to them.
    """
    with tempfile.TemporaryDirectory(prefix="saipv1-") as tmp:
        copy = Path(tmp) / "SAIPv1"
        patch_checkout(Path(src), copy, patches)

        def ours(name: str) -> bool:
            return any(name == m or name.startswith(m + ".") for m in _MODULES)

        saved = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
        sys.path.insert(0, str(copy))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # timm.models.layers, nn.utils.weight_norm
                ref = Reference(
                    importlib.import_module("main_pretrain"), importlib.import_module("models_pretrain")
                )
        finally:
            sys.path.remove(str(copy))
            for k in [k for k in sys.modules if ours(k)]:
                del sys.modules[k]
            sys.modules.update(saved)
        yield ref


def samples_from_batch(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Our collated batch in the public code's layout: one ``(B, ...)`` tensor per view.

    ``[global 1, global 2, local 1 .. local L, composite, instance mask, region mask]``: the public data
    pipeline's order, where local L is global view 1 resized (ours too), the instance mask marks where local
    L was pasted into the composite and the region mask where local L-1 was (``views.INSTANCE`` /
    ``views.REGION`` in ours).
    """
    from saip_bench.pretrain.views import INSTANCE, REGION, view_chunk

    comp, masks = batch["composite"], batch["masks"].float()
    b = comp.shape[0]
    g, loc = batch["globals"], batch["locals"]
    views = [view_chunk(g, i, b) for i in range(g.shape[0] // b)]
    views += [view_chunk(loc, i, b) for i in range(loc.shape[0] // b)]
    return [v.contiguous() for v in [*views, comp, masks[:, INSTANCE], masks[:, REGION]]]


class ReferenceStep:
    """Student, teacher, CSM loss, AdamW and loss scaler as ``main_pretrain.main()`` builds them.

    Args:
        ref: The patched public modules (:func:`load_reference`).
        img_size: Global view size ``(H, W)``.
        encoder: ``(embed_dim, depth, num_heads)`` of the ViT/16 (its intermediate output is block index 6,
            so depth >= 7).
        local_crops: Local views per sample.
        out_dim: Prototypes of the CSM head.
        decoder_dim, decoder_depth, decoder_heads: The CSR decoder (the public code also gives the CSS
            decoder these heads). At the defaults the model is ``csl_vit_tiny_patch16`` exactly.
        norm_pix: ``--norm_pix_loss`` (the published recipe sets it).
        lr: The absolute learning rate (constant: no warm-up, one "epoch").
        weight_decay: ``--weight_decay``.
        mask_ratio: ``--mask_ratio``.
        device: Where it runs.
    """

    def __init__(
        self,
        ref: Reference,
        *,
        img_size: tuple[int, int] = (256, 128),
        encoder: tuple[int, int, int] = (192, 12, 3),
        local_crops: int = 8,
        out_dim: int = 65536,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        norm_pix: bool = True,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        mask_ratio: float = 0.75,
        device: torch.device | str = "cpu",
    ) -> None:
        mp, models = ref.main_pretrain, ref.models_pretrain
        self._train_one_epoch = mp.train_one_epoch
        self.device = torch.device(device)
        kw = {"img_size": tuple(img_size), "norm_pix_loss": bool(norm_pix), "out_dim": int(out_dim)}

        def build() -> nn.Module:
            if tuple(encoder) == (192, 12, 3) and (decoder_dim, decoder_depth, decoder_heads) == (512, 8, 16):
                return models.csl_vit_tiny_patch16(**kw)
            # The entrypoint with other numbers (smaller models: a quick check of the harness).
            dim, depth, heads = encoder
            return models.CSLViTWrapper(
                patch_size=(16, 16), embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4,
                decoder_embed_dim=decoder_dim, decoder_depth=decoder_depth, decoder_num_heads=decoder_heads,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), **kw,
            )  # fmt: skip

        # main(): two models of the same architecture, the teacher loaded from the student, frozen.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # nn.utils.weight_norm
            self.teacher = build().to(self.device)
            self.student = build().to(self.device)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        epochs = 1
        self.args = argparse.Namespace(
            accum_iter=1, mask_ratio=float(mask_ratio), local_crops_number=int(local_crops), lr=float(lr),
            min_lr=0.0, warmup_epochs=0, epochs=epochs,
        )  # fmt: skip
        # Public defaults: --warmup_teacher_temp 0.07, --teacher_temp 0.04, --warmup_teacher_temp_epochs 0.
        self.csm_loss = mp.CSMLoss(int(out_dim), int(local_crops) + 2, 0.07, 0.04, 0, epochs).to(self.device)
        groups = mp.optim_factory.add_weight_decay(self.student, float(weight_decay))
        self.optimizer = torch.optim.AdamW(groups, lr=float(lr), betas=(0.9, 0.95))
        self.loss_scaler = mp.NativeScaler()
        self.momentum_schedule = mp.cosine_scheduler(0.996, 1, epochs, 1)

    def step(self, samples: list[torch.Tensor]) -> float:
        """One optimiser step of ``main_pretrain.train_one_epoch`` on ``samples``; returns the total loss."""
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            stats = self._train_one_epoch(
                self.student, self.teacher, self.teacher, self.csm_loss, self.momentum_schedule,
                [(samples, None)], self.optimizer, self.device, 0, self.loss_scaler, log_writer=None,
                args=self.args,
            )  # fmt: skip
        return float(stats["loss"])

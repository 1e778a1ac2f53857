"""The linear probe: features of a frozen backbone extracted once, then a linear head trained on them.

Extracting once and training the head on cached features makes the probe take seconds on a CPU for
synthetic data and minutes on a GPU for the real 100k-image set, with no augmentation (the backbone is frozen,
so augmentation would only mean extracting features again).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from saip_bench.engine import ProgressFn
from saip_bench.tasks.attribute.losses import weighted_bce
from saip_bench.tasks.attribute.model import AttributeHead


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device | str,
    progress: ProgressFn | None = None,
    description: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``backbone`` in eval mode over ``loader``: ``(N, D)`` float32 features and ``(N, A)`` labels."""
    backbone.eval()
    device = torch.device(device)
    feats, labels = [], []
    total = len(loader) if hasattr(loader, "__len__") else 0  # type: ignore[arg-type]
    for i, (images, targets) in enumerate(loader):
        feats.append(backbone(images.to(device)).float().cpu())
        labels.append(targets.float())
        if progress is not None:
            progress(description, i + 1, total)
    if not feats:
        raise ValueError("no images to extract features from")
    return torch.cat(feats), torch.cat(labels)


def train_linear_head(
    feats: torch.Tensor,
    labels: torch.Tensor,
    *,
    pos_ratio: np.ndarray | torch.Tensor | None,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    bn: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> tuple[AttributeHead, list[float]]:
    """Train an :class:`AttributeHead` on cached features with AdamW, cosine lr and weighted BCE.

    Args:
        feats: ``(N, D)`` training features.
        labels: ``(N, A)`` 0/1 training labels.
        pos_ratio: ``(A,)`` positive ratios for the BCE weights (None: unweighted).
        steps: optimizer steps (0 returns the freshly initialised head: the "untrained" reference).
        lr: peak learning rate.
        weight_decay: AdamW weight decay on the linear weight.
        batch_size: samples per step, drawn without replacement within each pass over the data.
        bn: BatchNorm on the logits (see :class:`AttributeHead`).
        seed: seeds the head's initialisation and the batch order.
        device: where to train.
        progress: ``progress("linear head", step, steps)`` callback.

    Returns:
        The head in eval mode, and the loss of every step.
    """
    if feats.shape[0] != labels.shape[0] or feats.shape[0] < 2:
        raise ValueError(
            f"need >= 2 matching features and labels, got {feats.shape[0]} and {labels.shape[0]}"
        )
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's global RNG
        torch.manual_seed(seed)
        head = AttributeHead(feats.shape[1], labels.shape[1], bn=bn).to(device)
    ratio = (
        None
        if pos_ratio is None
        else torch.as_tensor(np.asarray(pos_ratio), dtype=torch.float32, device=device)
    )
    feats, labels = feats.to(device), labels.to(device)
    optimizer = torch.optim.AdamW(
        [{"params": [head.fc.weight], "weight_decay": weight_decay},
         {"params": [p for n, p in head.named_parameters() if n != "fc.weight"], "weight_decay": 0.0}],
        lr=lr,
    )  # fmt: skip
    n = feats.shape[0]
    batch = max(2, min(batch_size, n))
    order, cursor = torch.randperm(n, generator=generator), 0
    losses: list[float] = []
    head.train()
    for step in range(steps):
        if cursor + batch > n:  # a new pass; a short tail would give BatchNorm a 1-sample batch
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + batch].to(device)
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = weighted_bce(head(feats[index]), labels[index], ratio)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress("linear head", step + 1, steps)
    return head.eval(), losses


@torch.no_grad()
def predict_scores(head: AttributeHead, feats: torch.Tensor, *, batch_size: int = 4096) -> np.ndarray:
    """Sigmoid probabilities ``(N, A)`` of a head in eval mode on cached features."""
    head.eval()
    device = next(head.parameters()).device
    out = [
        torch.sigmoid(head(feats[i : i + batch_size].to(device))).cpu()
        for i in range(0, len(feats), batch_size)
    ]
    return torch.cat(out).numpy()

"""The fast ``linear`` protocol: frozen image features, a trainable text encoder and two projections.

The backbone runs once over the images; training then only touches cached features and the small text
side, so the protocol takes seconds on a CPU for synthetic data (what the demo runs).
"""

from __future__ import annotations

import math

import torch

from saip_bench.engine import ProgressFn
from saip_bench.tasks.text_retrieval.losses import retrieval_loss
from saip_bench.tasks.text_retrieval.model import RetrievalModel


def train_on_features(
    model: RetrievalModel,
    image_feats: torch.Tensor,
    image_index: torch.Tensor,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 64,
    temperature: float = 0.02,
    weights: dict[str, float] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> list[float]:
    """Train ``model`` (no backbone) on caption/feature pairs with AdamW and a cosine lr.

    Args:
        model: a :class:`RetrievalModel` without backbone, on ``device``.
        image_feats: ``(N_images, D)`` cached image features.
        image_index: ``(N_captions,)`` the image row of each caption.
        tokens: ``(N_captions, L)`` caption token ids.
        labels: ``(N_captions,)`` identity labels 0..C-1.
        steps: optimizer steps (0 leaves the model untrained: the reference figure).
        lr: peak learning rate.
        weight_decay: AdamW weight decay on matrices.
        batch_size: captions per step, drawn without replacement within each pass.
        temperature: loss temperature.
        weights: loss weights (see :func:`~saip_bench.tasks.text_retrieval.losses.retrieval_loss`).
        seed: seeds the batch order.
        device: where to train.
        progress: ``progress("text retrieval head", step, steps)`` callback.

    Returns:
        The loss of every step; the model is left in eval mode.
    """
    device = torch.device(device)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    generator = torch.Generator().manual_seed(seed)
    n = len(image_index)
    batch = max(2, min(batch_size, n))
    order, cursor = torch.randperm(n, generator=generator), 0
    losses: list[float] = []
    model.train()
    for step in range(steps):
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        image, text, image_logits, text_logits = model(
            image_feats[image_index[index]].to(device), tokens[index].to(device)
        )
        out = retrieval_loss(
            image, text, labels[index].to(device), image_logits=image_logits, text_logits=text_logits,
            temperature=temperature, weights=weights,
        )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
        if progress is not None:
            progress("text retrieval head", step + 1, steps)
    model.eval()
    return losses

"""The feature probe shared by the tasks: features of a frozen model extracted once, a head trained on them.

Extracting once and training the head on cached features makes a linear probe take seconds on a CPU for
synthetic data and minutes on a GPU for a 100k-image set; there is no augmentation (the backbone is frozen,
so augmenting would only mean extracting again). The pieces:

- :func:`extract_features`: ``(N, D)`` features of a model over a dataset, in the dataset's order. Under DDP
  (an initialised process group) each rank extracts one contiguous shard and the shards are all-gathered,
  so every rank ends with all ``N`` rows, as in one process. Re-ID uses it for its query and gallery too.
- :func:`train_head`: the one head-training loop on cached features (seeded batch order, AdamW with weight
  decay on matrices only, cosine learning rate); the task gives the head and a loss of a batch of rows, which
  holds its features and targets.
- :func:`apply_batched`: a function of cached features (the trained head, a projection) in batches.
- :func:`save_head`: the trained head's weights and its metrics, written by rank 0 only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from saip_bench.engine import ProgressFn, all_gather_tensor, is_main, loader_workers
from saip_bench.engine.distributed import rank, world_size
from saip_bench.io import atomic_path, atomic_write_json

#: ``loss_fn(head, rows)``: the loss of the training rows ``rows`` (a CPU long tensor), a scalar or a dict of
#: named terms whose ``"loss"`` is optimised (the engine's ``step_fn`` convention).
HeadLossFn = Callable[[nn.Module, torch.Tensor], "torch.Tensor | dict[str, torch.Tensor]"]


def shard_rows(n: int, rank: int, world: int) -> list[int]:
    """The rows rank ``rank`` of ``world`` extracts: one contiguous block of ``ceil(n / world)`` rows.

    Every rank gets the same number of rows (all-gather needs equal sizes): the last blocks are padded with
    row ``n - 1``, and the padding is dropped after the gather.
    """
    per = math.ceil(n / world)
    return [min(row, n - 1) for row in range(rank * per, (rank + 1) * per)]


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a batch: the batch itself, or the first element of a ``(images, ...)`` tuple."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


@torch.no_grad()
def extract_features(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images: Dataset | DataLoader,
    *,
    device: torch.device | str,
    batch_size: int = 128,
    workers: int = 0,
    flip: bool = False,
    amp: bool = False,
    progress: ProgressFn | None = None,
    description: str = "features",
) -> torch.Tensor:
    """``(N, D)`` float32 CPU features of ``model`` over ``images``, row ``i`` = item ``i``.

    Args:
        model: maps an image batch to ``(B, D)`` features: a module (a backbone, a task model), run in eval
            mode and put back in its mode afterwards, or a function (a task model's embedding, scores), run
            as it is.
        images: a dataset whose items are an image tensor or a tuple starting with one (labels, indices,
            ... after it are ignored), or a DataLoader over such a dataset in order (its batch size, workers
            and collate function are used instead of ``batch_size`` and ``workers``).
        device: where the model runs.
        batch_size: images per forward pass.
        workers: DataLoader workers (capped at the cores, :func:`saip_bench.engine.loader_workers`).
        flip: average each feature with the horizontally mirrored image's (re-ID's test-time flip).
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        progress: ``progress(description, batch, batches)`` callback.
        description: the progress label.

    Under DDP each rank extracts :func:`shard_rows` of the dataset and the features are all-gathered in the
    dataset's order: every rank returns the same ``(N, D)`` tensor a single process would.

    Raises:
        ValueError: ``images`` is empty.
    """
    device = torch.device(device)
    if isinstance(images, DataLoader):
        dataset, collate = images.dataset, images.collate_fn
        batch_size, workers = int(images.batch_size or batch_size), int(images.num_workers)
    else:
        dataset, collate = images, None
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("no images to extract features from")
    world = world_size()
    if world > 1:
        dataset = Subset(dataset, shard_rows(n, rank(), world))
    if isinstance(images, DataLoader) and world == 1:
        loader = images
    else:
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=loader_workers(workers),
            pin_memory=device.type == "cuda", collate_fn=collate,
        )  # fmt: skip
    module = model if isinstance(model, nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    use_amp = amp and device.type == "cuda"
    feats = []
    for i, batch in enumerate(loader):
        batch_images = _images(batch).to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            feat = model(batch_images).float()
            if flip:
                feat = (feat + model(torch.flip(batch_images, dims=[3])).float()) / 2
        feats.append(feat if world > 1 else feat.cpu())
        if progress is not None:
            progress(description, i + 1, len(loader))
    if module is not None:
        module.train(was_training)
    local = torch.cat(feats)
    if world == 1:
        return local
    # On the compute device: nccl gathers CUDA tensors, gloo CPU ones (init_distributed pairs them so).
    return torch.cat(all_gather_tensor(local.contiguous()))[:n].cpu()


def train_head(
    head: nn.Module,
    loss_fn: HeadLossFn,
    num_rows: int,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    progress: ProgressFn | None = None,
    description: str = "linear head",
) -> list[float]:
    """Train the trainable parameters of ``head`` on cached rows with AdamW and a cosine learning rate.

    Args:
        head: the module to train (its parameters with ``requires_grad``), already on its device.
        loss_fn: ``loss_fn(head, rows)``: the loss of a batch of training rows (see :data:`HeadLossFn`);
            it holds the cached features and targets and moves them to the head's device.
        num_rows: the number of training rows (features, captions, ...) batches are drawn from.
        steps: optimizer steps (0 leaves the head as initialised: the "untrained" reference).
        lr: peak learning rate, decayed to 0 over ``steps`` on a half cosine.
        weight_decay: AdamW weight decay of the matrices (parameters with 2+ dimensions); biases and norms 0.
        batch_size: rows per step, at least 2 (a BatchNorm or an in-batch contrastive loss needs pairs),
            drawn without replacement within each pass over the rows; a short tail starts a new pass.
        seed: seeds the batch order (a generator of its own: the global RNG is not touched).
        progress: ``progress(description, step, steps)`` callback.
        description: the progress label.

    Returns:
        The loss of every step; ``head`` is left in eval mode.

    Raises:
        ValueError: fewer than 2 rows.
    """
    if num_rows < 2:
        raise ValueError(f"need at least 2 training rows for the head, got {num_rows}")
    trainable = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
         {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}],
        lr=lr,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    batch = max(2, min(batch_size, num_rows))
    order, cursor = torch.randperm(num_rows, generator=generator), 0
    losses: list[float] = []
    head.train()
    for step in range(steps):
        if cursor + batch > num_rows:
            order, cursor = torch.randperm(num_rows, generator=generator), 0
        rows = order[cursor : cursor + batch]
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        out = loss_fn(head, rows)
        loss = out["loss"] if isinstance(out, dict) else out
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(description, step + 1, steps)
    head.eval()
    return losses


@torch.no_grad()
def apply_batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    device: torch.device | str,
    batch_size: int = 4096,
) -> torch.Tensor:
    """``fn`` over ``inputs`` (cached features, token ids) in batches on ``device``: float32 CPU rows."""
    out = [fn(inputs[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(inputs), batch_size)]
    return torch.cat(out)


def save_head(
    run_dir: str | Path, filename: str, state: dict[str, torch.Tensor], record: dict[str, Any]
) -> None:
    """``run_dir/filename`` (the trained head's ``state``, on the CPU) and ``run_dir/metrics.json``.

    Only rank 0 writes; both files are written to a temporary name and renamed.
    """
    if not is_main():
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / filename) as tmp:
        torch.save({key: value.detach().cpu() for key, value in state.items()}, tmp)
    atomic_write_json(run_dir / "metrics.json", record)

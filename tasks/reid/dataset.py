"""Image dataset and transforms for re-ID training and feature extraction.

A file that cannot be decoded raises :class:`ImageReadError` (a DataFormatError naming the file). DataLoader
workers re-raise exceptions in the main process from their formatted traceback; this class rebuilds its
one-line message from it, so the user still sees one clear line instead of a worker traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD, read_rgb


class ReidImages(Dataset):
    """``(image tensor, label, camid, index)`` for a list of ``(path, pid, camid)`` items.

    Args:
        items: ``(path, pid, camid)`` triples.
        transform: PIL image -> tensor.
        relabel: map pids to ``0..num_ids-1`` (training); otherwise the label is the pid itself.
    """

    def __init__(
        self,
        items: Sequence[tuple[Path, int, int]],
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        relabel: bool = False,
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.pid_to_label: dict[int, int] = {}
        if relabel:
            self.pid_to_label = {pid: i for i, pid in enumerate(sorted({int(p) for _, p, _ in self.items}))}
        self.labels = [self.pid_to_label.get(int(p), int(p)) for _, p, _ in self.items]

    @property
    def num_ids(self) -> int:
        return len(set(self.labels))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        path, _, camid = self.items[index]
        return self.transform(read_rgb(Path(path))), self.labels[index], int(camid), index


def build_transforms(
    img_size: tuple[int, int],
    *,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip: float = 0.5,
    pad: int = 10,
    erasing: float = 0.5,
) -> Callable[[Any], torch.Tensor]:
    """TransReID's transforms: resize (bicubic); for training also flip, pad + random crop, random erasing."""
    from torchvision import transforms as T

    steps: list[Any] = [T.Resize(tuple(img_size), interpolation=T.InterpolationMode.BICUBIC)]
    if train:
        if flip > 0:
            steps.append(T.RandomHorizontalFlip(flip))
        if pad > 0:
            steps += [T.Pad(pad), T.RandomCrop(tuple(img_size))]
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    if train and erasing > 0:
        steps.append(T.RandomErasing(p=erasing, value=0))
    return T.Compose(steps)

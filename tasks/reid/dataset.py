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

from saip_bench.errors import DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageReadError(DataFormatError):
    """An image file is missing or cannot be decoded."""

    # torch's ExceptionWrapper calls ``cls(message=traceback_text)`` for classes with a ``message`` attribute.
    message = "image read error"

    def __init__(
        self, path: str | Path | None = None, problem: str | None = None, *, message: str | None = None
    ):
        if message is not None:  # rebuilt from a DataLoader worker's traceback: keep its last line only
            tag = f"{type(self).__name__}: "
            last = [line for line in message.splitlines() if tag in line]
            text = last[-1].split(tag, 1)[1] if last else message.strip().splitlines()[-1]
            path, _, problem = text.partition(": ")
        super().__init__(path or "?", problem or "cannot read image")


def read_rgb(path: Path) -> Image.Image:
    """Open ``path`` as RGB, fully decoded; a missing or corrupt file raises :class:`ImageReadError`."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(path, "image file is missing") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(path, f"cannot decode image ({err})") from None


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

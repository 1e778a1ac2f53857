"""Image side of the attribute task: the torch dataset and the recipe's transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T

from saip_bench.errors import DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDecodeError(DataFormatError):
    """A listed image that cannot be decoded.

    DataLoader workers re-raise an exception in the main process as ``type(err)(formatted_traceback)``; the
    one-argument form below recovers the original "path: problem" line from that text, so the user still gets
    one line naming the file instead of a worker traceback.
    """

    def __init__(self, path: str | Path, problem: str | None = None) -> None:
        if problem is None:
            last = [line for line in str(path).splitlines() if line.strip()][-1]
            text = last.split(f"{type(self).__name__}: ", 1)[-1]
            path, _, problem = text.partition(": ")
        super().__init__(path, problem)


def eval_transform(img_size: tuple[int, int]) -> T.Compose:
    """Resize to ``(H, W)`` and normalise."""
    return T.Compose([T.Resize(tuple(img_size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(img_size: tuple[int, int], *, pad: int = 10, flip: float = 0.5) -> T.Compose:
    """Rethinking_of_PAR's pedestrian augmentation: resize, pad, random crop back, horizontal flip."""
    steps: list = [T.Resize(tuple(img_size))]
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop(tuple(img_size))]
    if flip > 0:
        steps.append(T.RandomHorizontalFlip(flip))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


class AttributeImages(Dataset):
    """``(image tensor, float label vector)`` pairs for a list of image files and their label rows."""

    def __init__(self, paths: list[Path], labels: np.ndarray, transform: T.Compose) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} images but {len(labels)} label rows")
        self.paths = list(paths)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except FileNotFoundError:
            raise ImageDecodeError(path, "listed image does not exist") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageDecodeError(path, f"cannot decode image ({err})") from None
        return self.transform(image), self.labels[index]

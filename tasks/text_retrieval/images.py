"""Image side of text retrieval: transforms, the caption-pair and gallery datasets, feature extraction."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms as T

from saip_bench.errors import DataFormatError
from saip_bench.evaluate.adapter import ProgressFn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_transform(img_size: tuple[int, int]) -> T.Compose:
    """Resize to ``(H, W)`` and normalise."""
    return T.Compose([T.Resize(tuple(img_size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(img_size: tuple[int, int], *, pad: int = 10, flip: float = 0.5) -> T.Compose:
    """IRRA-style light augmentation: resize, pad + random crop, horizontal flip.

    Flipping keeps captions true: PEDES descriptions rarely say left or right.
    """
    steps: list = [T.Resize(tuple(img_size))]
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop(tuple(img_size))]
    if flip > 0:
        steps.append(T.RandomHorizontalFlip(flip))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


def read_rgb(path: Path) -> Image.Image:
    """An image file as RGB; an unreadable file is a DataFormatError naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataFormatError(path, "listed image does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataFormatError(path, f"cannot decode image ({err})") from None


class GalleryImages(Dataset):
    """``(image tensor, index)`` for a list of image files."""

    def __init__(self, paths: list[Path], transform: T.Compose) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(read_rgb(self.paths[index])), index


class CaptionPairs(Dataset):
    """``(image tensor, token ids, label)``: one sample per caption, its image and its identity label."""

    def __init__(
        self, paths: list[Path], image_index: list[int], tokens: torch.Tensor, labels: list[int],
        transform: T.Compose,
    ) -> None:  # fmt: skip
        if not len(image_index) == len(tokens) == len(labels):
            raise ValueError("image_index, tokens and labels must have one entry per caption")
        self.paths = list(paths)
        self.image_index = list(image_index)
        self.tokens = tokens
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = self.transform(read_rgb(self.paths[self.image_index[index]]))
        return image, self.tokens[index], self.labels[index]


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device | str,
    progress: ProgressFn | None = None,
    description: str = "features",
) -> torch.Tensor:
    """``(N, D)`` float32 features of ``backbone`` in eval mode over a :class:`GalleryImages` loader."""
    backbone.eval()
    device = torch.device(device)
    feats = []
    total = len(loader) if hasattr(loader, "__len__") else 0  # type: ignore[arg-type]
    for i, (images, _) in enumerate(loader):
        feats.append(backbone(images.to(device)).float().cpu())
        if progress is not None:
            progress(description, i + 1, total)
    if not feats:
        raise ValueError("no images to extract features from")
    return torch.cat(feats)

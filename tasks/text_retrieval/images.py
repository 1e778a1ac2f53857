"""Image side of text retrieval: the caption-pair and gallery datasets."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T

from saip_bench.evaluate.images import read_rgb


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

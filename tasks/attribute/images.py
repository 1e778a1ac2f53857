"""Image side of the attribute task: the torch dataset and the recipe's transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms as T

from saip_bench.evaluate.images import read_rgb


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
        return self.transform(read_rgb(path)), self.labels[index]

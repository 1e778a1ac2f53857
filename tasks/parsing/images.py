"""Image/label pairs for parsing and their transforms.

Training (CE2P/SCHP style): the image is first scaled to fit the input size, then by a random factor in
``scale_range`` (default 0.5-2.0), padded (image with zeros after normalisation, i.e. the mean colour; labels
with 255) to at least the input size, randomly cropped to the input size and mirrored with probability
``flip``, the mirror swapping the left/right classes (arms 14/15, legs 16/17, shoes 18/19). Images are
normalised with the ImageNet statistics; labels are resized with nearest-neighbour.

Evaluation: the image is resized to the input size; its label stays at the original resolution, where the
predictions are scored (the adapter upsamples the logits to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD, read_rgb
from saip_bench.tasks.parsing.data import IGNORE_INDEX, flip_permutation, read_label

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> normalised ``(3, H, W)`` float tensor."""
    array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    return (array - _MEAN) / _STD


class ParsingImages(Dataset):
    """``(image, label)`` pairs of one split.

    Args:
        images: image paths.
        labels: label png paths, parallel to ``images``.
        img_size: network input ``(H, W)``.
        train: apply the training augmentation (random scale, crop, flip) instead of the eval resize.
        scale_range: random scale factors for training.
        flip: probability of the mirrored (left/right swapped) training sample.
        seed: base seed of the augmentation (combined with the index and an epoch counter).
    """

    def __init__(
        self,
        images: Sequence[Path],
        labels: Sequence[Path],
        img_size: tuple[int, int],
        *,
        train: bool,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.images, self.labels = list(images), list(labels)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.train = train
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = float(flip)
        self.seed = seed
        self._flip_lut = np.arange(256, dtype=np.uint8)
        self._flip_lut[: len(flip_permutation())] = flip_permutation()
        self._draws = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_rgb(self.images[index])
        label = read_label(self.labels[index])
        if not self.train:
            resized = image.resize((self.img_size[1], self.img_size[0]), Image.BILINEAR)
            return to_tensor(resized), torch.from_numpy(label.astype(np.int64))
        self._draws += 1
        rng = np.random.default_rng([self.seed, index, self._draws, torch.initial_seed() % 2**32])
        return self._augment(image, label, rng)

    def _augment(
        self, image: Image.Image, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.img_size
        fit = min(h / image.height, w / image.width)
        scale = fit * float(rng.uniform(*self.scale_range))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.BILINEAR)
        lab = Image.fromarray(label).resize(size, Image.NEAREST)
        tensor = to_tensor(image)
        target = torch.from_numpy(np.asarray(lab, dtype=np.uint8).astype(np.int64))
        pad_h, pad_w = max(0, h - tensor.shape[1]), max(0, w - tensor.shape[2])
        if pad_h or pad_w:
            tensor = torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h), value=0.0)
            target = torch.nn.functional.pad(target, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        y0 = int(rng.integers(0, tensor.shape[1] - h + 1))
        x0 = int(rng.integers(0, tensor.shape[2] - w + 1))
        tensor, target = tensor[:, y0 : y0 + h, x0 : x0 + w], target[y0 : y0 + h, x0 : x0 + w]
        if rng.random() < self.flip:
            tensor = tensor.flip(-1)
            target = torch.from_numpy(self._flip_lut[target.flip(-1).numpy()].astype(np.int64))
        return tensor.contiguous(), target.contiguous()


def collate_eval(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack the (same-size) inputs; keep the labels, each at its own image's size, as a list."""
    return torch.stack([image for image, _ in batch]), [label for _, label in batch]

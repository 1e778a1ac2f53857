"""Image/label pairs for parsing and their transforms.

Training (CE2P/SCHP style): the image is first scaled to fit the input size, then by a random factor in
``scale_range`` (default 0.5-2.0), padded (image with zeros after normalisation, i.e. the mean colour; labels
with 255) to at least the input size, randomly cropped to the input size and mirrored with probability
``flip``, the mirror swapping the left/right classes (arms 14/15, legs 16/17, shoes 18/19). Images are
normalised with the ImageNet statistics; labels are resized with nearest-neighbour.

Evaluation keeps the aspect ratio as training does (CE2P/SCHP transform the test person box to the input
size without distortion): the image is scaled to fit the input size (:func:`fit_size`) and padded bottom/right
with the mean colour. Its label stays at the original resolution, where the predictions are scored: the
adapter crops the logits to the fitted region and upsamples them to the label. (Stretching the image to the
input size instead would show the network persons at another aspect ratio than it was trained on.)
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


def fit_size(height: int, width: int, img_size: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of a ``height x width`` image scaled, aspect kept, to fit inside ``img_size``."""
    scale = min(img_size[0] / height, img_size[1] / width)
    return max(1, min(img_size[0], round(height * scale))), max(1, min(img_size[1], round(width * scale)))


def letterbox(image: Image.Image, img_size: tuple[int, int]) -> torch.Tensor:
    """``image`` scaled to :func:`fit_size`, normalised and zero-padded (the mean colour) to ``img_size``."""
    h, w = fit_size(image.height, image.width, img_size)
    tensor = to_tensor(image.resize((w, h), Image.BILINEAR))
    return torch.nn.functional.pad(tensor, (0, img_size[1] - w, 0, img_size[0] - h), value=0.0)


class ParsingImages(Dataset):
    """``(image, label)`` pairs of one split.

    Args:
        images: image paths.
        labels: label png paths, parallel to ``images``.
        img_size: network input ``(H, W)``.
        train: apply the training augmentation (random scale, crop, flip) instead of the eval letterbox.
        scale_range: random scale factors for training.
        flip: probability of the mirrored (left/right swapped) training sample.
        seed: base seed of the augmentation (combined with the index, a draw counter and the loader worker's
            seed), so a run is reproducible for a fixed seed.
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
            return letterbox(image, self.img_size), torch.from_numpy(label.astype(np.int64))
        self._draws += 1
        # a loader worker's seed comes from the loader's seeded generator (new each epoch); the main process
        # (num_workers 0) relies on the draw counter alone: torch.initial_seed() there is the process's random
        # default unless someone seeded torch, which made smoke runs differ from run to run
        worker = torch.utils.data.get_worker_info()
        stream = worker.seed % 2**32 if worker is not None else 0
        rng = np.random.default_rng([self.seed, index, self._draws, stream])
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

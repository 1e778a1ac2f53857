"""The synthetic multi-person image of SAIP's cross-scale search (CSS) and its two paste masks.

A random crop of a background image (any image source: by default the pretraining images themselves) is
resized to 224x224, and two 128x64 person views are pasted into it at random non-overlapping places, each
blended as ``alpha * person + (1 - alpha) * background``. One binary mask per person marks where it went.
Blending the ImageNet-normalised tensors equals blending the pixels and normalising afterwards (the weights
sum to one), so persons arrive normalised and the composite leaves normalised; ``uint8`` persons (quantised
views) are blended as grey levels, rounded, and leave a ``uint8`` composite with ``uint8`` masks. The
background is decoded to a ``uint8`` tensor, cropped and resized in one resample and augmented on the small
float crop, as the views are (see image_ops.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saip_bench.errors import DataFormatError
from saip_bench.pretrain.image_ops import read_image, resized_crop, to_uint8_, to_uint8_tensor
from saip_bench.pretrain.views import IMAGENET_MEAN, IMAGENET_STD, PhotometricAugment, random_resized_crop_box

__all__ = [
    "IMAGE_SUFFIXES",
    "BackgroundSource",
    "CompositeMaker",
    "background_from_folder",
    "background_from_sequence",
    "paste_positions",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Draws a background image: a PIL image or a ``(3, H, W)`` ``uint8`` tensor.
BackgroundSource = Callable[[np.random.Generator], Image.Image | torch.Tensor]


def background_from_sequence(
    items: Sequence[Image.Image | torch.Tensor | str | os.PathLike],
) -> BackgroundSource:
    """A background source drawing uniformly from images or image paths (decoded when drawn).

    Pass the pretraining dataset's own image paths for the default behaviour (background = another
    pretraining image). The source returns ``(3, H, W)`` ``uint8`` tensors; an unreadable file raises
    :class:`DataFormatError` naming it.
    """
    if len(items) == 0:
        raise ValueError("background_from_sequence needs at least one image")

    def draw(rng: np.random.Generator) -> torch.Tensor:
        item = items[int(rng.integers(len(items)))]
        if isinstance(item, Image.Image | torch.Tensor):
            return to_uint8_tensor(item)
        return read_image(item)

    return draw


def background_from_folder(path: str | os.PathLike) -> BackgroundSource:
    """A background source over every image file under ``path`` (recursive, sorted for reproducibility)."""
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError(root, "background folder does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataFormatError(root, f"no background images ({', '.join(IMAGE_SUFFIXES)}) found")
    return background_from_sequence(files)


def paste_positions(
    canvas: tuple[int, int], box: tuple[int, int], n: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """``n`` top-left corners of ``box``-sized rectangles inside ``canvas`` that do not overlap.

    Each corner is uniform over the places that do not overlap the ones drawn before it (a few rejection
    tries, then an exact draw among the free places).

    Raises:
        ValueError: The rectangles cannot all fit.
    """
    ch, cw = canvas
    bh, bw = box
    if bh > ch or bw > cw:
        raise ValueError(f"a {bh}x{bw} paste does not fit a {ch}x{cw} composite")
    placed: list[tuple[int, int]] = []

    def free(t: int, left: int) -> bool:
        return all(t + bh <= pt or pt + bh <= t or left + bw <= pl or pl + bw <= left for pt, pl in placed)

    for _ in range(n):
        for _try in range(20):
            t, left = int(rng.integers(ch - bh + 1)), int(rng.integers(cw - bw + 1))
            if free(t, left):
                break
        else:
            tops, lefts = np.meshgrid(np.arange(ch - bh + 1), np.arange(cw - bw + 1), indexing="ij")
            ok = np.ones(tops.shape, dtype=bool)
            for pt, pl in placed:
                ok &= ~((tops < pt + bh) & (pt < tops + bh) & (lefts < pl + bw) & (pl < lefts + bw))
            cands = np.flatnonzero(ok)
            if cands.size == 0:
                raise ValueError(f"{n} pastes of {bh}x{bw} do not fit a {ch}x{cw} composite without overlap")
            k = int(cands[int(rng.integers(cands.size))])
            t, left = int(tops.flat[k]), int(lefts.flat[k])
        placed.append((t, left))
    return placed


class CompositeMaker:
    """Makes the multi-person composite and its paste masks.

    Args:
        background: Callable drawing a background image from a numpy generator
            (see :func:`background_from_sequence`, :func:`background_from_folder`).
        size: ``(H, W)`` of the composite.
        person_size: ``(h, w)`` of each pasted person view.
        alpha: Weight of the person in the blend.
        bg_scale: Area fraction range of the background crop.
        bg_ratio: Aspect range (w / h) of the background crop.
        flip_p, jitter_p, grayscale_p, blur_p, solarize_p: Photometric augmentation of the background.
        interpolation: Resampling of the background crop, ``"bicubic"`` or ``"bilinear"`` (antialiased).
    """

    def __init__(
        self,
        background: BackgroundSource,
        *,
        size: tuple[int, int] = (224, 224),
        person_size: tuple[int, int] = (128, 64),
        alpha: float = 0.7,
        bg_scale: tuple[float, float] = (0.2, 1.0),
        bg_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.1,
        solarize_p: float = 0.2,
        interpolation: str = "bicubic",
    ) -> None:
        self.background = background
        self.interpolation = interpolation
        self.size = (int(size[0]), int(size[1]))
        self.person_size = (int(person_size[0]), int(person_size[1]))
        ph, pw = self.person_size
        if not (2 * ph <= self.size[0] or 2 * pw <= self.size[1]):
            raise ValueError(f"two {ph}x{pw} persons cannot fit a {self.size} composite without overlap")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.bg_scale, self.bg_ratio = tuple(bg_scale), tuple(bg_ratio)
        self.bg_aug = PhotometricAugment(
            flip_p=flip_p, jitter_p=jitter_p, grayscale_p=grayscale_p, blur_p=blur_p, solarize_p=solarize_p
        )

    def background_tensor(
        self, rng: np.random.Generator, *, out: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """A normalised ``(3, H, W)`` random crop of a drawn background image (into ``out`` when given); its
        rounded grey levels when ``out`` (or, without one, ``dtype``) is ``uint8``."""
        img = to_uint8_tensor(self.background(rng))
        box = random_resized_crop_box(img.shape[2], img.shape[1], self.bg_scale, self.bg_ratio, rng)
        x = resized_crop(img, box, self.size, interpolation=self.interpolation)
        if out is None:
            out = torch.empty(3, *self.size, dtype=dtype)
        return self.bg_aug(x, rng, out=out, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def crop(
        self,
        rng: np.random.Generator,
        *,
        out: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        """``views.output: crops``: the background's ``uint8`` crop, its draws and the paste places.

        The draws of :meth:`__call__` in its order (background image, crop box, photometric draws, paste
        places); ``out`` = ``(canvas (3, H, W) uint8, draws (DRAW_FIELDS,), paste (P, 3))``, paste row p =
        top, left and blend weight of person p. The augmentation, the pasting and the masks happen on the
        training device (device_views.py).
        """
        canvas, draws, paste = out
        img = to_uint8_tensor(self.background(rng))
        box = random_resized_crop_box(img.shape[2], img.shape[1], self.bg_scale, self.bg_ratio, rng)
        resized_crop(img, box, self.size, interpolation=self.interpolation, out=canvas)
        self.bg_aug.draw(rng).encode(draws)
        for p, (top, left) in enumerate(paste_positions(self.size, self.person_size, paste.shape[0], rng)):
            paste[p] = torch.tensor([top, left, self.alpha])

    def __call__(
        self,
        persons: torch.Tensor,
        rng: np.random.Generator,
        *,
        out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste ``persons`` (P, 3, h, w), normalised, into a background.

        Args:
            persons: The person views, normalised (or ``uint8``: quantised).
            rng: The sample's generator.
            out: ``(composite, masks)`` tensors to write into (a batch's slots); new ones when None.

        Returns:
            ``(composite, masks)``: ``(3, H, W)`` normalised and ``(P, H, W)`` float {0, 1}, mask p marking
            the pixels of person p; both ``uint8`` for ``uint8`` persons.
        """
        if tuple(persons.shape[-2:]) != self.person_size:
            raise ValueError(f"person views are {tuple(persons.shape[-2:])}, expected {self.person_size}")
        quantised = persons.dtype == torch.uint8
        canvas = self.background_tensor(rng, out=None if out is None else out[0], dtype=persons.dtype)
        if out is None:
            masks = torch.zeros(persons.shape[0], *self.size, dtype=persons.dtype)
        else:
            masks = out[1].zero_()
        ph, pw = self.person_size
        for p, (top, left) in enumerate(paste_positions(self.size, self.person_size, persons.shape[0], rng)):
            region = canvas[:, top : top + ph, left : left + pw]  # a view: the blend writes into the canvas
            if quantised:  # the blend of two grey levels stays in 0-255: + 0.5 and truncation round it
                blend = region.float().mul_(1.0 - self.alpha).add_(persons[p].float(), alpha=self.alpha)
                to_uint8_(blend.add_(0.5), region)
            else:
                region.mul_(1.0 - self.alpha).add_(persons[p], alpha=self.alpha)
            masks[p, top : top + ph, left : left + pw] = 1
        return canvas, masks

"""Multi-crop views of one person image (SAIP "Views"), seeded only by the generators passed in.

Two 256x128 global views, ``local_crops_number`` 128x64 local views of which the last is global view 1
resized (the same person at a smaller scale), optionally the multi-person composite (see composite.py);
a collate function that stacks views of one size into one tensor, view-major, so the model runs one backbone
call per size; and the training-time random rescale of two local views.

Every random draw comes from the ``np.random.Generator`` (per sample) or ``torch.Generator`` (per batch)
given to the call, never from the global ``random`` / ``numpy`` / ``torch`` state, so a run is reproducible
whatever the number of data-loader workers and resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INSTANCE",
    "REGION",
    "RESCALE_CHOICES",
    "MultiCropViews",
    "SaipViews",
    "collate_views",
    "draw_rescale_factors",
    "rescale",
    "rescaled_size",
    "sample_rng",
    "view_chunk",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE_CHOICES = (0.75, 0.875, 1.125, 1.25)
# Index of each paste mask in the "masks" tensor.
INSTANCE = 0  # where locals[L-1] (global view 1, small) was pasted; query: the student's global view 1
REGION = 1  # where locals[L-2] was pasted; query: the rescaled local view L-2


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's views: a pure function of (seed, epoch, dataset index)."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> ``(3, H, W)`` float tensor normalised with the ImageNet mean and std."""
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)


def random_resized_crop_box(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """Box ``(top, left, h, w)`` of a random resized crop (area fraction ``scale``, aspect w/h ``ratio``).

    Same sampling as torchvision's ``RandomResizedCrop.get_params`` (10 tries, then a centre crop clamped
    to the ratio range), drawn from ``rng``.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class PhotometricAugment:
    """Flip, colour jitter, grayscale, Gaussian blur and solarization, all drawn from a numpy generator."""

    def __init__(
        self,
        *,
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        grayscale_p: float = 0.2,
        blur_p: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_p: float = 0.0,
    ) -> None:
        self.flip_p, self.jitter_p, self.jitter = flip_p, jitter_p, jitter
        self.grayscale_p, self.blur_p, self.blur_sigma, self.solarize_p = (
            grayscale_p,
            blur_p,
            blur_sigma,
            solarize_p,
        )

    def _jitter(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        brightness, contrast, saturation, hue = self.jitter
        ops = []
        if brightness > 0:
            f = rng.uniform(max(0.0, 1 - brightness), 1 + brightness)
            ops.append(lambda im, f=f: TF.adjust_brightness(im, f))
        if contrast > 0:
            f = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
            ops.append(lambda im, f=f: TF.adjust_contrast(im, f))
        if saturation > 0:
            f = rng.uniform(max(0.0, 1 - saturation), 1 + saturation)
            ops.append(lambda im, f=f: TF.adjust_saturation(im, f))
        if hue > 0:
            f = rng.uniform(-hue, hue)
            ops.append(lambda im, f=f: TF.adjust_hue(im, f))
        # torchvision's ColorJitter applies the four in a random order; so do we.
        for i in rng.permutation(len(ops)):
            img = ops[i](img)
        return img

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Apply the augmentations to an RGB image; every coin flip is drawn, so draws stay aligned."""
        if rng.random() < self.flip_p:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < self.jitter_p:
            img = self._jitter(img, rng)
        if rng.random() < self.grayscale_p:
            img = img.convert("L").convert("RGB")
        if rng.random() < self.blur_p:
            img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*self.blur_sigma)))
        if rng.random() < self.solarize_p:
            img = ImageOps.solarize(img, threshold=128)
        return img


class MultiCropViews:
    """The two global and ``local_crops_number`` local views of one person image.

    Args:
        global_size: ``(H, W)`` of the global views.
        local_size: ``(H, W)`` of the local views.
        global_scale: Area fraction range of the global crops.
        local_scale: Area fraction range of the local crops.
        ratio: Aspect range (width / height) of every crop.
        local_crops_number: Local views in total; the last is global view 1 resized to ``local_size``.
        flip_p, jitter_p, jitter, grayscale_p: Shared photometric settings
            (jitter = brightness, contrast, saturation, hue).
        global_blur_p: Blur probability of global view 1 and 2.
        global_solarize_p: Solarization probability of global view 1 and 2.
        local_blur_p: Blur probability of the local views.
        blur_sigma: Gaussian blur radius range.
    """

    def __init__(
        self,
        *,
        global_size: tuple[int, int] = (256, 128),
        local_size: tuple[int, int] = (128, 64),
        global_scale: tuple[float, float] = (0.8, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.8),
        ratio: tuple[float, float] = (0.4, 0.6),
        local_crops_number: int = 8,
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
        grayscale_p: float = 0.2,
        global_blur_p: tuple[float, float] = (1.0, 0.1),
        global_solarize_p: tuple[float, float] = (0.0, 0.2),
        local_blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        if local_crops_number < 0:
            raise ValueError(f"local_crops_number must be >= 0, got {local_crops_number}")
        self.global_size = tuple(int(s) for s in global_size)
        self.local_size = tuple(int(s) for s in local_size)
        self.global_scale, self.local_scale, self.ratio = (
            tuple(global_scale),
            tuple(local_scale),
            tuple(ratio),
        )
        self.local_crops_number = int(local_crops_number)
        shared = {"flip_p": flip_p, "jitter_p": jitter_p, "jitter": tuple(jitter), "grayscale_p": grayscale_p}
        self.global_aug = [
            PhotometricAugment(**shared, blur_p=b, solarize_p=s, blur_sigma=tuple(blur_sigma))
            for b, s in zip(global_blur_p, global_solarize_p, strict=True)
        ]
        self.local_aug = PhotometricAugment(**shared, blur_p=local_blur_p, blur_sigma=tuple(blur_sigma))

    def _crop(
        self,
        img: Image.Image,
        size: tuple[int, int],
        scale: tuple[float, float],
        rng: np.random.Generator,
    ) -> Image.Image:
        top, left, h, w = random_resized_crop_box(img.width, img.height, scale, self.ratio, rng)
        return img.resize((size[1], size[0]), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Views of ``img``: ``{"globals": (2, 3, *global_size), "locals": (L, 3, *local_size)}``."""
        img = img.convert("RGB")
        globals_ = [
            to_normalized_tensor(aug(self._crop(img, self.global_size, self.global_scale, rng), rng))
            for aug in self.global_aug
        ]
        locals_ = [
            to_normalized_tensor(self.local_aug(self._crop(img, self.local_size, self.local_scale, rng), rng))
            for _ in range(max(self.local_crops_number - 1, 0))
        ]
        if self.local_crops_number > 0:
            # The small copy is the augmented global view 1 itself, area-downsampled (same person, same look).
            small = F.interpolate(globals_[0][None], size=self.local_size, mode="area")[0]
            locals_.append(small)
        out = {"globals": torch.stack(globals_)}
        out["locals"] = (
            torch.stack(locals_) if locals_ else torch.empty(0, 3, *self.local_size, dtype=torch.float32)
        )
        return out


class SaipViews:
    """Multi-crop views plus, optionally, the multi-person composite made from the last two local views.

    Args:
        multicrop: The multi-crop pipeline.
        composite: A ``CompositeMaker`` (see composite.py), or None for views without a composite
            (DINO / MAE baselines).
    """

    def __init__(
        self,
        multicrop: MultiCropViews,
        composite: Callable[[torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]
        | None = None,
    ) -> None:
        if composite is not None and multicrop.local_crops_number < 2:
            raise ValueError("the composite pastes the last two local views: local_crops_number must be >= 2")
        self.multicrop = multicrop
        self.composite = composite

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Views of ``img``; with a composite also ``"composite"`` (3, H, W) and ``"masks"`` (2, H, W)."""
        out = self.multicrop(img, rng)
        if self.composite is not None:
            locals_ = out["locals"]
            persons = torch.stack([locals_[-1], locals_[-2]])  # order = (INSTANCE, REGION)
            out["composite"], out["masks"] = self.composite(persons, rng)
        return out


def collate_views(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-sample views: multi-view keys view-major, the rest sample-major.

    ``"globals"`` (V, 3, H, W) per sample becomes (V*B, 3, H, W) with rows ``v*B + b``; likewise
    ``"locals"``. ``"composite"`` and ``"masks"`` become (B, ...). Any other tensor key is stacked on a new
    first dimension.
    """
    if not samples:
        raise ValueError("collate_views got an empty batch")
    out: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        stacked = torch.stack([s[key] for s in samples])  # (B, V, ...) or (B, ...)
        if key in ("globals", "locals"):
            stacked = stacked.transpose(0, 1).reshape(-1, *stacked.shape[2:])
        out[key] = stacked
    return out


def view_chunk(t: torch.Tensor, i: int, batch_size: int) -> torch.Tensor:
    """View ``i`` (all samples) of a view-major ``(V*B, ...)`` tensor."""
    return t[i * batch_size : (i + 1) * batch_size]


def draw_rescale_factors(
    generator: torch.Generator, n: int = 2, choices: Sequence[float] = RESCALE_CHOICES
) -> list[float]:
    """Draw ``n`` rescale factors (one per rescaled view, shared by the batch) from ``choices``."""
    idx = torch.randint(len(choices), (n,), generator=generator)
    return [float(choices[int(i)]) for i in idx]


def rescaled_size(hw: tuple[int, int], factor: float, patch_size: int = 16) -> tuple[int, int]:
    """``hw * factor`` rounded (half up) to the nearest multiple of the patch, at least one patch."""

    def side(s: int) -> int:
        return max(1, int(math.floor(s * factor / patch_size + 0.5))) * patch_size

    return side(hw[0]), side(hw[1])


def rescale(x: torch.Tensor, factor: float, patch_size: int = 16) -> torch.Tensor:
    """Resize a ``(B, C, H, W)`` batch by ``factor`` (bilinear) to a patch-multiple size."""
    size = rescaled_size(tuple(x.shape[-2:]), factor, patch_size)
    if size == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=factor < 1)

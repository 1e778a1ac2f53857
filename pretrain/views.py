"""Multi-crop views of one person image (SAIP "Views"), seeded only by the generators passed in.

Two 256x128 global views, ``local_crops_number`` 128x64 local views of which the last is global view 1
resized (the same person at a smaller scale), optionally the multi-person composite (see composite.py);
a collate function that stacks views of one size into one tensor, view-major, so the model runs one backbone
call per size; and the training-time random rescale of two local views.

Every random draw comes from the ``np.random.Generator`` (per sample) or ``torch.Generator`` (per batch)
given to the call, never from the global ``random`` / ``numpy`` / ``torch`` state, so a run is reproducible
whatever the number of data-loader workers and resumes exactly.

The views are made on tensors (see image_ops.py): the image is decoded once to ``uint8``, each crop is one
antialiased ``uint8`` resample straight to its output size, the photometric augmentations run in place on
the small float crop (a run of colour operations as one pass), and each view is normalised once, straight
into its slot of the output tensor; a data-loader batch is made in place (:meth:`SaipViews.make_batch`), in
the memory of an earlier batch once nothing holds that (:class:`BatchMemory`). Side by side on one core,
2.4-3.2x the samples a second of the PIL pipeline this replaced (``benchmarks/pretrain_data.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import default_collate, get_worker_info

from saip_bench.pretrain.image_ops import (
    ColourMap,
    apply_hue,
    area_downsample,
    channel_means,
    colour_plane,
    gaussian_blur,
    normalize,
    normalize_mapped,
    normalize_uint8,
    quantize,
    resized_crop,
    solarize,
    to_uint8_,
    to_uint8_tensor,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_KEYS",
    "INSTANCE",
    "OUTPUTS",
    "REGION",
    "RESCALE_CHOICES",
    "MultiCropViews",
    "SaipViews",
    "BatchMemory",
    "ViewBatch",
    "collate_views",
    "draw_rescale_factors",
    "normalize_views",
    "rescale",
    "rescaled_size",
    "sample_rng",
    "view_chunk",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE_CHOICES = (0.75, 0.875, 1.125, 1.25)
#: What the views are stored as: ``float32`` normalised with ImageNet's mean and std, or ``uint8`` grey levels
#: (a quarter of the bytes through a loader worker's shared memory and the host-to-device copy), normalised
#: on the training device by :func:`normalize_views`; or ``crops``: the ``uint8`` crops with their
#: photometric draws, the augmentation and normalisation done on the training device (device_views.py).
OUTPUTS = ("float32", "uint8", "crops")
#: The keys a ``crops`` batch adds, float32: each view's draws, each pasted person's place and weight.
CROPS_KEYS = ("draws", "paste")
#: The image keys of a views batch (``masks`` is the other).
IMAGE_KEYS = ("globals", "locals", "composite")
# Index of each paste mask in the "masks" tensor.
INSTANCE = 0  # where locals[L-1] (global view 1, small) was pasted; query: the student's global view 1
REGION = 1  # where locals[L-2] was pasted; query: the rescaled local view L-2


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's views: a pure function of (seed, epoch, dataset index)."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


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


BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
#: Floats a view's draws take in a ``crops`` batch (:meth:`ViewDraws.encode`).
DRAW_FIELDS = 12


@dataclass(frozen=True, slots=True)
class ViewDraws:
    """One view's photometric draws (:meth:`PhotometricAugment.draw`).

    ``jitter``: the colour operations as ``(operation, factor)`` in the order they apply (operation 0
    brightness, 1 contrast, 2 saturation, 3 hue; empty without jitter); ``sigma``: the blur's standard
    deviation in pixels, 0 for no blur.
    """

    flip: bool = False
    jitter: tuple[tuple[int, float], ...] = ()
    grey: bool = False
    sigma: float = 0.0
    solarize: bool = False

    def encode(self, out: torch.Tensor) -> torch.Tensor:
        """The draws as :data:`DRAW_FIELDS` floats into ``out`` (what a ``crops`` batch carries, read by
        :func:`augment_tensor`): flip, then (operation, factor) four times (operation -1: none), grey,
        sigma, solarize."""
        values = [float(self.flip)]
        for i in range(4):
            op, factor = self.jitter[i] if i < len(self.jitter) else (-1, 0.0)
            values += [float(op), float(factor)]
        values += [float(self.grey), float(self.sigma), float(self.solarize)]
        out.copy_(torch.tensor(values, dtype=out.dtype))
        return out


class PhotometricAugment:
    """Flip, colour jitter, grayscale, Gaussian blur and solarization, all drawn from a numpy generator.

    DINO's recipe, on a float image on the 0-255 scale (see image_ops.py): a horizontal flip; with
    ``jitter_p`` torchvision's ``ColorJitter(*jitter)`` (factors uniform in ``[max(0, 1 - s), 1 + s]``, a
    hue shift uniform in ``[-hue, hue]``, the four in a random order, each clamped); grey with
    ``grayscale_p``; with ``blur_p`` a Gaussian blur of standard deviation uniform in ``blur_sigma``; with
    ``solarize_p`` PIL's solarization at 128. Every coin is drawn whether or not the operation applies, and
    the operation's parameters only when it does, in the order of the PIL version this replaces
    (:meth:`draw`); :meth:`apply` applies them to one image, :func:`augment_tensor` to a batch of views
    on the training device.
    """

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

    def draw(self, rng: np.random.Generator) -> ViewDraws:
        """One view's coins and parameters, in the PIL pipeline's order (ColorJitter's factors in the order
        brightness, contrast, saturation, hue, then the order they apply in)."""
        flip = rng.random() < self.flip_p
        jitter: tuple[tuple[int, float], ...] = ()
        if rng.random() < self.jitter_p:
            brightness, contrast, saturation, hue = self.jitter
            ops: list[tuple[int, float]] = []
            if brightness > 0:
                ops.append((BRIGHTNESS, rng.uniform(max(0.0, 1 - brightness), 1 + brightness)))
            if contrast > 0:
                ops.append((CONTRAST, rng.uniform(max(0.0, 1 - contrast), 1 + contrast)))
            if saturation > 0:
                ops.append((SATURATION, rng.uniform(max(0.0, 1 - saturation), 1 + saturation)))
            if hue > 0:
                ops.append((HUE, rng.uniform(-hue, hue)))
            # torchvision's ColorJitter applies the four in a random order; so do we.
            jitter = tuple((ops[i][0], float(ops[i][1])) for i in rng.permutation(len(ops)))
        grey = rng.random() < self.grayscale_p
        blur = rng.random() < self.blur_p
        sigma = float(rng.uniform(*self.blur_sigma)) if blur else 0.0
        solar = rng.random() < self.solarize_p
        return ViewDraws(bool(flip), jitter, bool(grey), sigma, bool(solar))

    @staticmethod
    def _jitter(x: torch.Tensor, jitter: tuple[tuple[int, float], ...], colour: ColourMap) -> torch.Tensor:
        """ColorJitter's operations in their drawn order, as few passes as it can.

        Each operation clamps after it only where it can leave the valid range (a factor above 1, any hue
        turn), as torchvision's; the operations between two clamps are composed in ``colour``
        (:class:`~saip_bench.pretrain.image_ops.ColourMap`) and applied at the clamp. Returns the image,
        with ``colour`` holding what is still to apply to it.
        """
        means = None  # channel means of x, once a contrast needs them
        for op, factor in jitter:
            if op == HUE:
                x, means = apply_hue(x, factor, colour), None
                continue
            if op == BRIGHTNESS:
                colour.scale(factor)
            elif op == CONTRAST:
                means = means or channel_means(x)
                colour.blend_with_mean(factor, means)
            else:
                colour.saturate(factor)
            if factor > 1:
                x, means = colour.apply(x, clamp=True), None
        return x

    def __call__(
        self,
        x: torch.Tensor,
        rng: np.random.Generator,
        *,
        out: torch.Tensor | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> torch.Tensor:
        """:meth:`apply` of a fresh :meth:`draw` from ``rng``."""
        return self.apply(x, self.draw(rng), out=out, mean=mean, std=std)

    def apply(
        self,
        x: torch.Tensor,
        draws: ViewDraws,
        *,
        out: torch.Tensor | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> torch.Tensor:
        """Augment a ``(3, H, W)`` float image on the 0-255 scale as ``draws`` say, in place where possible.

        With ``out`` (a ``(3, H, W)`` slot) the result is normalised with ``mean`` and ``std`` (on the 0-1
        scale, ImageNet's by default) straight into it, the last colour operations folded into that pass; a
        ``uint8`` slot gets the grey levels rounded instead (:func:`~saip_bench.pretrain.image_ops.quantize`),
        ``x`` then holding them plus a half level, unrounded.

        Returns:
            ``out``, or the augmented image: ``(3, H, W)``, or ``(1, H, W)`` when it was turned grey (the
            channel broadcasts in :func:`saip_bench.pretrain.image_ops.normalize`).
        """
        if draws.flip:
            x = x.flip(-1)
        colour = ColourMap()
        if draws.jitter:
            x = self._jitter(x, draws.jitter, colour)
        if draws.grey:
            row, c = colour.grey_row()
            colour = ColourMap()
            x = colour_plane(x, row, c)
        blur, solar = draws.sigma > 0, draws.solarize
        if blur or solar or out is None:
            x = colour.apply(x)
            if blur:
                x = gaussian_blur(x, draws.sigma)
            if solar:
                x = solarize(x)
            if out is None:
                return x
        if out.dtype == torch.uint8:
            return quantize(x, out=out, colour=colour)
        if colour.is_identity():
            return normalize(x, mean, std, out=out)
        return normalize_mapped(x, colour, mean, std, out=out)


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
        blur_sigma: Gaussian blur standard deviation range, in pixels (PIL's ``radius``).
        interpolation: ``"bicubic"`` (DINO's ``RandomResizedCrop``) or ``"bilinear"`` (about 10% faster
            per crop), both antialiased.
        output: ``"float32"``: views normalised with ImageNet's mean and std; ``"uint8"``: the grey levels,
            rounded (:func:`normalize_views` normalises them where the model runs); ``"crops"``: the
            ``uint8`` crops and their draws (``"draws"``), augmented where the model runs. For the first
            two, slots passed as ``out`` decide by their own dtype.
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
        interpolation: str = "bicubic",
        output: str = "float32",
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.crops = output == "crops"
        self.dtype = torch.float32 if output == "float32" else torch.uint8
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
        self.interpolation = interpolation
        shared = {"flip_p": flip_p, "jitter_p": jitter_p, "jitter": tuple(jitter), "grayscale_p": grayscale_p}
        self.global_aug = [
            PhotometricAugment(**shared, blur_p=b, solarize_p=s, blur_sigma=tuple(blur_sigma))
            for b, s in zip(global_blur_p, global_solarize_p, strict=True)
        ]
        self.local_aug = PhotometricAugment(**shared, blur_p=local_blur_p, blur_sigma=tuple(blur_sigma))

    def _view(
        self,
        img: torch.Tensor,
        size: tuple[int, int],
        scale: tuple[float, float],
        aug: PhotometricAugment,
        rng: np.random.Generator,
        out: torch.Tensor,
        *,
        keep: bool = False,
    ) -> torch.Tensor | None:
        """One random resized crop of ``img``, augmented and normalised (or quantised) into ``out``.

        ``keep`` (a ``uint8`` slot): return the float image that was quantised, for the view's small copy.
        """
        box = random_resized_crop_box(img.shape[2], img.shape[1], scale, self.ratio, rng)
        x = resized_crop(img, box, size, interpolation=self.interpolation)
        if not keep:
            aug(x, rng, out=out, mean=IMAGENET_MEAN, std=IMAGENET_STD)
            return None
        x = aug(x, rng)  # the same draws as with a slot
        quantize(x, out=out)
        return x

    def __call__(
        self,
        img: Image.Image | torch.Tensor,
        rng: np.random.Generator,
        *,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Views of ``img``: ``{"globals": (2, 3, *global_size), "locals": (L, 3, *local_size)}``.

        ``img`` is a PIL image or a ``(3, H, W)`` ``uint8`` tensor (:func:`image_ops.read_image`).
        ``out``: tensors of those shapes to write the views into (a batch's slots); new ones when None.
        """
        img = to_uint8_tensor(img)
        if out is None:
            out = {
                "globals": torch.empty(len(self.global_aug), 3, *self.global_size, dtype=self.dtype),
                "locals": torch.empty(self.local_crops_number, 3, *self.local_size, dtype=self.dtype),
            }
            if self.crops:
                out["draws"] = torch.empty(self.n_draws, DRAW_FIELDS)
        if self.crops:
            return self._crops(img, rng, out)
        globals_, locals_ = out["globals"], out["locals"]
        quantised = globals_.dtype == torch.uint8
        kept = [
            self._view(img, self.global_size, self.global_scale, aug, rng, view, keep=quantised and i == 0)
            for i, (view, aug) in enumerate(zip(globals_, self.global_aug, strict=True))
        ]
        for view in locals_[:-1]:
            self._view(img, self.local_size, self.local_scale, self.local_aug, rng, view)
        if self.local_crops_number > 0:
            # The small copy is the augmented global view 1 itself, area-downsampled (same person, same look):
            # of the normalised view, or of the quantised one before rounding (then rounded itself).
            if quantised:
                to_uint8_(area_downsample(kept[0], self.local_size), locals_[-1])
            else:
                area_downsample(globals_[0], self.local_size, out=locals_[-1])
        return out

    @property
    def n_draws(self) -> int:
        """Views with draws of their own per sample: the globals and the locals but the small copy."""
        return len(self.global_aug) + max(self.local_crops_number - 1, 0)

    def _crops(self, img: torch.Tensor, rng: np.random.Generator, out: dict[str, torch.Tensor]) -> dict:
        """``views.output: crops``: each view's ``uint8`` crop and its encoded draws into ``out``.

        The same draws from ``rng`` in the same order as the finished views; the small copy's crop rows are
        zero (device_views.py makes it from the augmented global view 1).
        """
        globals_, locals_ = out["globals"], out["locals"]
        views = [
            (self.global_size, self.global_scale, a, slot)
            for a, slot in zip(self.global_aug, globals_, strict=True)
        ]
        if self.local_crops_number > 0:
            views += [(self.local_size, self.local_scale, self.local_aug, slot) for slot in locals_[:-1]]
            locals_[-1].zero_()
        for i, (size, scale, aug, slot) in enumerate(views):
            box = random_resized_crop_box(img.shape[2], img.shape[1], scale, self.ratio, rng)
            resized_crop(img, box, size, interpolation=self.interpolation, out=slot)
            aug.draw(rng).encode(out["draws"][i])
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

    def __call__(
        self,
        img: Image.Image | torch.Tensor,
        rng: np.random.Generator,
        *,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Views of ``img``; with a composite also ``"composite"`` (3, H, W) and ``"masks"`` (2, H, W).

        ``out``: tensors of those shapes to write into (see :meth:`make_batch`); new ones when None.
        """
        if self.multicrop.crops:
            if out is None:
                out = {  # one sample: the view-major keys (V, ...) as they are, the others without the batch
                    k: torch.empty(shape if k in VIEW_MAJOR else shape[1:], dtype=_key_dtype(k, torch.uint8))
                    for k, shape in self.batch_shapes(1).items()
                }
            views = self.multicrop(img, rng, out=out)
            if self.composite is not None:
                self.composite.crop(rng, out=(out["composite"], out["draws"][-1], out["paste"]))
            return views
        views = self.multicrop(img, rng, out=out)
        if self.composite is not None:
            locals_ = views["locals"]
            persons = locals_[[-1, -2]]  # order = (INSTANCE, REGION)
            slots = (out["composite"], out["masks"]) if out is not None else None
            views["composite"], views["masks"] = self.composite(persons, rng, out=slots)
        return views

    def batch_shapes(self, batch_size: int) -> dict[str, tuple[int, ...]]:
        """The shapes :func:`collate_views` gives a batch of ``batch_size`` samples (view-major views)."""
        mc = self.multicrop
        shapes = {
            "globals": (len(mc.global_aug) * batch_size, 3, *mc.global_size),
            "locals": (mc.local_crops_number * batch_size, 3, *mc.local_size),
        }
        if self.composite is not None:
            shapes["composite"] = (batch_size, 3, *self.composite.size)
            if not mc.crops:  # crops: the masks are made from the paste places, on the device
                shapes["masks"] = (batch_size, 2, *self.composite.size)
        if mc.crops:  # each view's draws (the background's last), each person's paste place and weight
            shapes["draws"] = (batch_size, mc.n_draws + (self.composite is not None), DRAW_FIELDS)
            if self.composite is not None:
                shapes["paste"] = (batch_size, 2, 3)
        return shapes

    def make_batch(
        self, batch_size: int, items: Iterable[tuple[Image.Image | torch.Tensor, np.random.Generator]]
    ) -> ViewBatch:
        """The views of ``batch_size`` ``(img, rng)`` items, written straight into one batch's tensors.

        The same views as calling the pipeline on each item and :func:`collate_views` on the results, without
        the per-sample tensors and the copy into the batch; in a data-loader worker the batch is allocated in
        shared memory, as torch's ``default_collate`` does, so it reaches the main process without a copy.
        ``items`` is consumed lazily (each image can be decoded just before its views are made).
        """
        if not hasattr(self, "_memory"):  # made lazily: unpickled copies (loader workers) start without one
            self._memory = BatchMemory()
        dtype = self.multicrop.dtype  # of every image key: uint8 views come with uint8 {0, 1} masks
        shapes = self.batch_shapes(batch_size)
        batch = {key: self._memory.tensor(shape, _key_dtype(key, dtype)) for key, shape in shapes.items()}
        samples = ViewBatch(batch)
        for b, (img, rng) in enumerate(items):
            if b >= batch_size:
                raise ValueError(f"make_batch got more than batch_size={batch_size} items")
            slots = {
                key: t.view(-1, batch_size, *t.shape[1:])[:, b] if key in VIEW_MAJOR else t[b]
                for key, t in batch.items()
            }
            samples.append(self(img, rng, out=slots))
        if len(samples) != batch_size:
            raise ValueError(f"make_batch got {len(samples)} items for batch_size={batch_size}")
        return samples


def _key_dtype(key: str, images: torch.dtype) -> torch.dtype:
    """The dtype of a views batch's ``key``: ``images`` (of the views and masks), float32 for the draws."""
    return torch.float32 if key in CROPS_KEYS else images


#: Keys whose per-sample views collate view-major (rows ``v * B + b``).
VIEW_MAJOR = ("globals", "locals")


class ViewBatch(list):
    """Per-sample view dicts that are slices of one batch's tensors (:meth:`SaipViews.make_batch`).

    A plain list of samples to any collate function; :func:`collate_views` returns ``batch`` as it is.
    """

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.batch = batch


class BatchMemory:
    """The memory of earlier batches, reused for a new one once nothing else holds it (in one process).

    A batch of the paper recipe is about 20 MB; freshly allocated, every page of it costs a page fault on its
    first write (about 640 per image, over a tenth of the views' time), and glibc returns such blocks to the
    system or not depending on its adaptive thresholds, so the cost came and went from run to run. A block
    is reused only when the pool's reference is the last one (the batch, and every view of it, is gone), so
    a consumer that keeps batches keeps their contents. In a data-loader worker the batch goes to shared
    memory instead, as ``default_collate`` puts it (the main process may hold it while the worker goes on).
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._blocks: list[torch.UntypedStorage] = []

    def __getstate__(self) -> dict:
        return {"capacity": self.capacity, "_blocks": []}  # a copy (a worker) starts empty

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` and ``dtype``: a free block of that size, or a new one."""
        if get_worker_info() is not None:
            return _shared_tensor(shape, dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        for block in self._blocks:
            if block.nbytes() == nbytes and _only_reference(block):
                return torch.empty(0, dtype=dtype).set_(block, 0, shape)
        out = torch.empty(shape, dtype=dtype)
        if len(self._blocks) < self.capacity and _only_reference is not _never:
            self._blocks.append(out.untyped_storage())
        return out


def _shared_tensor(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # In a loader worker, allocate in shared memory as default_collate does, so that sending the batch to
    # the main process moves no data.
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def normalize_views(
    batch: dict[str, torch.Tensor],
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> dict[str, torch.Tensor]:
    """A views batch as the model reads it: ``uint8`` images normalised to ``float32`` and ``uint8`` masks as
    ``float32``, on the device they are on; float tensors and other keys as they are.

    The same numbers as views made as ``float32`` from the rounded grey levels (:func:`quantize`'s); a batch
    that is float already is returned unchanged (its tensors the same objects).
    """
    from saip_bench.pretrain.device_views import finish_views, is_crops_batch

    if is_crops_batch(batch):
        return finish_views(batch, mean, std)
    if not any(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in batch.values()):
        return batch
    out = dict(batch)
    for key in IMAGE_KEYS:
        t = out.get(key)
        if isinstance(t, torch.Tensor) and t.dtype == torch.uint8:
            out[key] = normalize_uint8(t, mean, std)
    masks = out.get("masks")
    if isinstance(masks, torch.Tensor) and masks.dtype == torch.uint8:
        out["masks"] = masks.float()
    return out


def _never(block: torch.UntypedStorage) -> bool:
    return False


_use_count = getattr(torch._C, "_storage_Use_Count", None)
# The pool's own reference is the only one: no tensor (or view) uses the block any more.
_only_reference = _never if _use_count is None else (lambda block: _use_count(block._cdata) == 1)


def collate_views(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-sample views: multi-view keys view-major, the rest sample-major.

    ``"globals"`` (V, 3, H, W) per sample becomes (V*B, 3, H, W) with rows ``v*B + b``; likewise
    ``"locals"``. ``"composite"`` and ``"masks"`` become (B, ...). Any other tensor key is stacked on a new
    first dimension. Each key is one copy, in a data-loader worker straight into shared memory (torch's
    ``default_collate``), so the batch reaches the main process without another. A :class:`ViewBatch`
    (samples made in place by :meth:`SaipViews.make_batch`) is returned as its batch, without a copy.
    """
    if isinstance(samples, ViewBatch):
        return dict(samples.batch)  # made in place: nothing to copy
    if not samples:
        raise ValueError("collate_views got an empty batch")
    out: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        if key in VIEW_MAJOR:
            first = samples[0][key]
            rows = [s[key][v] for v in range(first.shape[0]) for s in samples]  # view-major
            out[key] = default_collate(rows) if rows else first.new_empty((0, *first.shape[1:]))
        else:
            out[key] = default_collate([s[key] for s in samples])
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


def rescaled_size(
    hw: tuple[int, int], factor: float, patch_size: int = 16, *, keep_aspect: bool = False
) -> tuple[int, int]:
    """The size of a ``hw`` view rescaled by ``factor``: a multiple of the patch, at least one patch a side.

    ``keep_aspect=False``: each side of ``hw * factor`` rounded (half up) to the nearest patch multiple on its
    own, so the sides can scale unequally (x0.875 of 128x64 gives 112x64, x1.125 gives 144x80).
    ``keep_aspect=True``: the public SAIPv1 code's sizes. It resizes to ``floor(side * factor)`` (what
    ``F.interpolate(scale_factor=factor)`` gives: 112x56, 144x72) and its stride-``patch_size`` patch
    embedding reads only the whole patches from the top-left, so the view that counts is that size floored to
    the patch (112x48, 144x64): the content scaled equally on both axes, the last partial patch dropped.
    At 128x64 and patch 16 the factors 0.75, 0.875, 1.125, 1.25 give 96x48, 112x48, 144x64, 160x80.
    """
    if keep_aspect:  # floor(side * factor), at least one patch, then floored to whole patches
        h, w = (max(patch_size, math.floor(s * factor)) // patch_size * patch_size for s in hw)
        return h, w

    def side(s: int) -> int:
        return max(1, int(math.floor(s * factor / patch_size + 0.5))) * patch_size

    return side(hw[0]), side(hw[1])


def rescale(
    x: torch.Tensor, factor: float, patch_size: int = 16, *, keep_aspect: bool = False
) -> torch.Tensor:
    """Resize a ``(B, C, H, W)`` batch by ``factor`` (bilinear, antialiased when shrinking) to
    :func:`rescaled_size`.

    With ``keep_aspect`` the batch is resized to ``floor(side * factor)`` and the whole patches from the
    top-left are kept (the pixels the public code's patch embedding reads).
    """
    hw = tuple(x.shape[-2:])
    size = rescaled_size(hw, factor, patch_size, keep_aspect=keep_aspect)
    scaled = tuple(max(patch_size, math.floor(s * factor)) for s in hw) if keep_aspect else size
    if scaled != hw:
        x = F.interpolate(x, size=scaled, mode="bilinear", align_corners=False, antialias=factor < 1)
    return x[..., : size[0], : size[1]] if size != scaled else x

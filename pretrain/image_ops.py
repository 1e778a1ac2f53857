"""Tensor image operations of the pretraining views: decode, crop-and-resize, colour, blur, normalise.

The views pipeline decodes a file once to a ``uint8`` tensor, crops and resizes it in one antialiased
``uint8`` resample, converts it to ``float32`` once and runs every photometric operation on that float
image in place where it can, and normalises it once, straight into the output slot. Float images here are on
the 0-255 scale (the ``uint8`` range, not quantised), which saves a division per view; the normalisation
folds in the 1/255. The colour operations between two clamps (brightness, contrast, saturation) are
composed into one map of the colour (:class:`ColourMap`) and applied as one blend, at the next clamp, in the
hue turn's matrix product, or in the normalisation; equal to the operations one by one to within float32
rounding (1e-4 grey levels).

The operations follow torchvision's ``ColorJitter`` / ``Grayscale`` / ``GaussianBlur`` and PIL's
``ImageOps.solarize`` (what DINO and SAIP use), each clamping to the valid range after it as those do, so
their random order still matters as it does there. One deliberate difference, for speed: **hue** is a
rotation of the colour about the grey axis (one 3x3 matrix per view), not torchvision's RGB -> HSV -> RGB
round trip (about 30 full-image operations). On person crops at a shift of 0.1 of the colour circle, the
HSV hue of the result moves by the requested shift to within 0.004 of the circle on average (0.006 at the
95th percentile); HSV saturation and value, which torchvision keeps exactly, move by about 0.03 and 0.04
(of 1). **Resampling** is antialiased bicubic on ``uint8`` (torch's vectorised channels-last kernel with
PIL's filter: the ``a = -0.5`` kernel and support of the ``Image.BICUBIC`` resize that DINO's
``RandomResizedCrop`` uses); bilinear is available and saves about 10% of a crop's time, too little to
leave the recipe for.

Nothing is rounded to ``uint8`` between operations, where PIL truncates after each (its enhancers leave an
image about half a grey level darker per operation). Against the PIL pipeline this replaces, on the same
draws: the same crops (mean difference 0.003-0.03 grey levels), brightness, contrast and saturation each
within that half level, blur within 0.5 levels on average (PIL approximates the Gaussian with three box
passes), hue 4 levels on average (the rotation above).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from saip_bench.errors import DataFormatError

__all__ = [
    "GRAY_WEIGHTS",
    "INTERPOLATIONS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "ColourMap",
    "apply_hue",
    "channel_means",
    "colour_plane",
    "area_downsample",
    "gaussian_blur",
    "hue_matrix",
    "hue_rotation",
    "normalize",
    "normalize_mapped",
    "normalize_uint8",
    "quantize",
    "read_image",
    "resized_crop",
    "solarize",
    "to_grayscale",
    "to_uint8_",
    "to_uint8_tensor",
]

#: ITU-R 601-2 luma, as PIL's ``convert("L")`` and torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
INTERPOLATIONS = ("bicubic", "bilinear")
_GRAY = torch.tensor(GRAY_WEIGHTS).view(1, 3)


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file to a ``(3, H, W)`` ``uint8`` RGB tensor (channels-last memory).

    JPEG, PNG, WebP and GIF go through torchvision's decoder (libjpeg-turbo for JPEG); anything else, or
    a file torchvision rejects, through PIL.

    Raises:
        DataFormatError: naming the file, when neither can read it (missing, truncated, not an image).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataFormatError(path, f"not a readable image ({err.strerror or err})") from None
    try:
        return _torchvision_decode(data)
    except (RuntimeError, ImportError):
        pass  # BMP, CMYK JPEG, no torchvision decoder...: PIL decides, and names the problem if there is one
    try:
        with Image.open(path) as img:
            return to_uint8_tensor(img)
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for corrupt files
        raise DataFormatError(path, f"not a readable image ({err})") from None


def _torchvision_decode(data: bytes) -> torch.Tensor:
    # torchvision 0.29 deprecates its decoders for TorchCodec's; until they go, they are the fastest way
    # from JPEG bytes to a tensor (about 1.5x PIL's open + decode + copy), and PIL takes over after.
    from torchvision.io import ImageReadMode, decode_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)


def to_uint8_tensor(img: Image.Image | torch.Tensor) -> torch.Tensor:
    """A PIL image or an image tensor as a ``(3, H, W)`` ``uint8`` RGB tensor (no copy for a tensor).

    Grey inputs (``L`` images, one-channel tensors) are repeated to three channels, as ``convert("RGB")``.
    """
    if isinstance(img, Image.Image):
        arr = np.array(img.convert("RGB"))  # a writable copy: torch refuses read-only buffers
        return torch.from_numpy(arr).permute(2, 0, 1)
    if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected a (3, H, W) or (1, H, W) uint8 image, got {img.dtype} {tuple(img.shape)}")
    return img.expand(3, -1, -1) if img.shape[0] == 1 else img


def resized_crop(
    img: torch.Tensor,
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    *,
    interpolation: str = "bicubic",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop ``box = (top, left, h, w)`` out of a ``uint8`` image and resize it to ``size = (H, W)``.

    One antialiased resample of the ``uint8`` pixels (torch's vectorised channels-last kernel), then one
    conversion to a contiguous ``float32`` image on the 0-255 scale, not rounded; or a copy into ``out``, a
    ``(3, H, W)`` slot of either dtype (``uint8``: the resampled pixels as they are).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    top, left, h, w = box
    crop = img[None, :, top : top + h, left : left + w]
    if (h, w) != tuple(size):
        crop = crop.contiguous(memory_format=torch.channels_last)
        crop = F.interpolate(crop, size=tuple(size), mode=interpolation, antialias=True, align_corners=False)
    if out is not None:
        return out.copy_(crop[0])
    return crop.to(torch.float32, memory_format=torch.contiguous_format)[0]


def adjust_brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x * factor``, clamped to 0-255; in place (torchvision's ``adjust_brightness``)."""
    x.mul_(factor)
    return x.clamp_(max=255.0) if factor > 1 else x


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the mean grey level, ``factor * x + (1 - factor) * mean``, clamped; in place."""
    mean = (_GRAY @ x.reshape(3, -1).sum(dim=1)) / (x.shape[1] * x.shape[2])
    x.lerp_(mean, 1.0 - factor)  # x + (1 - f) (mean - x): one pass
    return x.clamp_(0.0, 255.0) if factor > 1 else x  # a convex blend of valid pixels stays valid


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """The luma of a ``(3, H, W)`` image as ``(1, H, W)`` (broadcasts wherever three channels do)."""
    return (_GRAY @ x.reshape(3, -1)).view(1, *x.shape[1:])


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's own grey version, ``factor * x + (1 - factor) * gray``, clamped; in place."""
    x.lerp_(to_grayscale(x), 1.0 - factor)
    return x.clamp_(0.0, 255.0) if factor > 1 else x


def hue_matrix(shift: float) -> torch.Tensor:
    """The 3x3 RGB rotation about the grey axis by ``shift`` of a full turn (``shift`` in [-0.5, 0.5]).

    A positive shift turns red towards yellow, as an HSV hue increase does (see the module docstring for
    how close the two are).
    """
    return _small(hue_rotation(shift))


def hue_rotation(shift: float) -> list[list[float]]:
    """:func:`hue_matrix` as nested lists of floats (for composing colour maps without tensors)."""
    theta = 2.0 * math.pi * shift
    c, s = math.cos(theta), math.sin(theta)
    a, b = (1.0 + 2.0 * c) / 3.0, (1.0 - c) / 3.0
    r = s / math.sqrt(3.0)
    return [[a, b - r, b + r], [b + r, a, b - r], [b - r, b + r, a]]


class ColourMap:
    """A run of colour operations not yet applied: ``y = a x + (u . x) + c`` for every channel of a pixel.

    Brightness (``f x``), contrast (``f x + (1 - f) m``, ``m`` the mean grey level), saturation
    (``f x + (1 - f) (g . x)``) and any product of them have this form; the map of a run of them is
    composed on five Python floats and applied in one blend (:meth:`apply`), where the operations
    one by one cost a pass or more each. A hue turn (a full 3x3 matrix, :func:`apply_hue`) and every clamp
    apply the map. Equal to the operations one after another up to float32 rounding (about 1e-4 grey
    levels).
    """

    __slots__ = ("a", "c", "u")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the identity."""
        self.a, self.u, self.c = 1.0, (0.0, 0.0, 0.0), 0.0

    def is_identity(self) -> bool:
        """Whether the map changes nothing (applying it is free)."""
        return self.a == 1.0 and self.c == 0.0 and not any(self.u)

    def scale(self, f: float) -> None:
        """Then ``f y`` (brightness)."""
        self.a, self.u, self.c = f * self.a, tuple(f * v for v in self.u), f * self.c

    def blend_with_mean(self, f: float, means: tuple[float, float, float]) -> None:
        """Then ``f y + (1 - f) mean_grey(y)`` (contrast); ``means``: the channel means of ``x``."""
        mean = self.a * _dot(GRAY_WEIGHTS, means) + _dot(self.u, means) + self.c
        self.scale(f)
        self.c += (1.0 - f) * mean

    def saturate(self, f: float) -> None:
        """Then ``f y + (1 - f) (g . y)`` (saturation; the grey weights sum to one)."""
        w = (1.0 - f) * self.a
        self.a, self.u = f * self.a, tuple(v + w * g for v, g in zip(self.u, GRAY_WEIGHTS, strict=True))

    def grey_row(self) -> tuple[tuple[float, float, float], float]:
        """``(r, c)`` with ``g . y = r . x + c``: the grey level of the mapped image."""
        return tuple(self.a * g + v for g, v in zip(GRAY_WEIGHTS, self.u, strict=True)), self.c

    def apply(self, x: torch.Tensor, *, clamp: bool = False) -> torch.Tensor:
        """The map applied to ``x`` in place (clamped to 0-255 if ``clamp``); the map becomes the identity."""
        a, u, c = self.a, self.u, self.c
        self.reset()
        if any(u) and a != 1.0:  # a x + (u . x) + c = lerp(x, (u . x + c) / (1 - a), 1 - a): as saturation
            w = 1.0 - a
            plane = colour_plane(x, tuple(v / w for v in u), c / w)
            x.lerp_(plane, w)
        elif any(u):
            x.add_(colour_plane(x, u, c))
        else:
            if a != 1.0:
                x.mul_(a)
            if c != 0.0:
                x.add_(c)
        return x.clamp_(0.0, 255.0) if clamp else x


def _dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def colour_plane(x: torch.Tensor, row: tuple[float, float, float], c: float = 0.0) -> torch.Tensor:
    """``row . pixel + c`` of a ``(3, H, W)`` image as ``(1, H, W)`` (a grey image, for ``row`` = the grey
    weights): one small matrix product."""
    plane = torch.mm(_small([row]), x.reshape(3, -1)).view(1, *x.shape[1:])
    return plane.add_(c) if c != 0.0 else plane


def _small(values: list) -> torch.Tensor:
    # a few float32 constants: through numpy, a third of the cost of torch.tensor on a nested list
    return torch.from_numpy(np.array(values, dtype=np.float32))


def channel_means(x: torch.Tensor) -> tuple[float, float, float]:
    """The mean of each channel of a ``(3, H, W)`` image, as floats."""
    sums = x.reshape(3, -1).sum(dim=1).tolist()
    n = x.shape[1] * x.shape[2]
    return sums[0] / n, sums[1] / n, sums[2] / n


def apply_hue(x: torch.Tensor, shift: float, colour: ColourMap | None = None) -> torch.Tensor:
    """:func:`adjust_hue` of ``colour`` applied to ``x`` (one 3x3 product, clamped); a new tensor.

    The rotation keeps the grey axis, so ``R (a x + (u . x) + c) = (a R + 1 u^T) x + c``. ``colour`` (the
    identity when None) becomes the identity.
    """
    rotation = hue_rotation(shift)
    a, u, c = (1.0, (0.0, 0.0, 0.0), 0.0) if colour is None else (colour.a, colour.u, colour.c)
    if colour is not None:
        colour.reset()
    matrix = _small([[a * rotation[i][j] + u[j] for j in range(3)] for i in range(3)])
    out = torch.mm(matrix, x.reshape(3, -1)).view(x.shape)
    if c != 0.0:
        out.add_(c)
    return out.clamp_(0.0, 255.0)


def normalize_mapped(
    x: torch.Tensor,
    colour: ColourMap,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    *,
    out: torch.Tensor,
) -> torch.Tensor:
    """:func:`normalize` of ``colour`` applied to ``x``, into ``out``: the map folded into the one pass."""
    a, u, c = colour.a, colour.u, colour.c
    scale = [1.0 / (255.0 * s) for s in std]
    bias = [(scale[i] * c - mean[i] / std[i]) for i in range(3)]
    if not any(u):  # per channel: s a x + (s c - mean / std)
        factors = _small([scale[i] * a for i in range(3)]).view(3, 1, 1)
        return torch.mul(x, factors, out=out).add_(_small(bias).view(3, 1, 1))
    matrix = _small([[scale[i] * ((a if i == j else 0.0) + u[j]) for j in range(3)] for i in range(3)])
    torch.addmm(_small(bias).view(3, 1), matrix, x.reshape(3, -1), out=out.view(3, -1))
    return out


def quantize(x: torch.Tensor, *, out: torch.Tensor, colour: ColourMap | None = None) -> torch.Tensor:
    """``x`` (``colour`` applied, if given) rounded to the nearest grey level and clamped, into ``out``.

    The quantised form of :func:`normalize_mapped`: the map's pending operations and the half-level offset
    of rounding are one blend, then one clamp and one conversion (which truncates: ``floor(y + 0.5)``).
    A ``(1, H, W)`` grey ``x`` broadcasts to a three-channel ``out``. ``colour`` becomes the identity; ``x``
    is changed in place: after the call it holds ``clamp(y + 0.5)`` (``y`` the mapped image), of which
    ``out`` is the integer part, so an area mean of ``x`` converted the same way is the rounded mean of
    ``y`` (the small copy of a view).
    """
    colour = colour or ColourMap()
    colour.c += 0.5
    return to_uint8_(colour.apply(x).clamp_(0.0, 255.0), out)


def to_uint8_(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``x`` (float, already in 0-255) truncated into ``uint8`` ``out``, broadcasting; returns ``out``.

    On the CPU through numpy's cast, 4-6x faster on one core than torch's float-to-``uint8`` copy (which
    is not vectorised); both truncate, so the bytes are the same.
    """
    if x.device.type == "cpu" and out.device.type == "cpu" and not x.requires_grad:
        np.copyto(out.numpy(), x.numpy(), casting="unsafe")
        return out
    return out.copy_(x)


def normalize_uint8(
    x: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel of a ``uint8`` ``(..., 3, H, W)`` batch, as ``float32`` on its
    device: where quantised views (:func:`quantize`) become the model's input, after the host-to-device copy
    (a quarter of the float32 bytes)."""
    bias, scale = _normalize_constants(tuple(mean), tuple(std), x.device)
    return torch.mul(x, scale, out=torch.empty(x.shape, device=x.device)).add_(bias)


def adjust_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the colours of a ``(3, H, W)`` image by ``shift`` of a turn about the grey axis, clamped."""
    out = (hue_matrix(shift) @ x.reshape(3, -1)).view(x.shape)
    return out.clamp_(0.0, 255.0)


def _gaussian_kernel(sigma: float) -> list[float]:
    radius = max(1, math.ceil(3.0 * sigma))  # the weights beyond 3 sigma are under 1.2% of the peak
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).tolist()


def _taps(padded: torch.Tensor, weights: list[float], dim: int, length: int) -> torch.Tensor:
    # the shifted slices as one unfold (a view), not one narrow a tap
    shifted = padded.unfold(dim, length, 1).unbind(dim)
    if dim == 1:  # unfold puts the window last: (C, W, H) for the rows; back to (C, H, W)
        shifted = [s.transpose(1, 2) for s in shifted]
    out = torch.mul(shifted[0], weights[0], out=padded.new_empty(shifted[0].shape))
    for i in range(1, len(weights)):
        out.add_(shifted[i], alpha=weights[i])
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of standard deviation ``sigma`` pixels (what PIL's ``radius`` is).

    The kernel covers +-ceil(3 sigma) pixels, normalised; edges replicate the border pixel, as PIL's.
    A sum of shifted slices: for kernels this small it is faster than a depthwise convolution on one core.
    """
    weights = _gaussian_kernel(float(sigma))
    r = len(weights) // 2
    _, h, w = x.shape
    x = _taps(F.pad(x[None], (0, 0, r, r), mode="replicate")[0], weights, 1, h)
    return _taps(F.pad(x[None], (r, r, 0, 0), mode="replicate")[0], weights, 2, w)


def area_downsample(
    x: torch.Tensor, size: tuple[int, int], *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.interpolate(mode="area")`` of a ``(C, H, W)`` image to ``size``, into ``out`` when given.

    When ``size`` divides the image (the small copy of a global view: 2x2), the mean of each block as sums
    of strided slices, about 5x faster on one core than torch's adaptive average pooling it equals.
    """
    c, h, w = x.shape
    fh, fw = h // size[0], w // size[1]
    if (fh * size[0], fw * size[1]) != (h, w) or x.stride(-1) != 1:
        small = F.interpolate(x[None], size=tuple(size), mode="area")[0]
        return small if out is None else out.copy_(small)
    rows = x.reshape(c, size[0], fh, w)
    acc = rows[:, :, 0].clone() if fh > 1 else rows[:, :, 0]
    for i in range(1, fh):
        acc.add_(rows[:, :, i])
    cols = acc.view(c, size[0], size[1], fw)
    if out is None:
        out = x.new_empty((c, *size))
    out.copy_(cols[..., 0])
    for j in range(1, fw):
        out.add_(cols[..., j])
    return out.mul_(1.0 / (fh * fw))


def solarize(x: torch.Tensor, threshold: float = 128.0) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``: PIL's ``ImageOps.solarize`` on the 0-255 scale.

    As ``x + [x >= t] (255 - 2x)``, the indicator ``floor(x / t)`` for a power-of-two ``t`` (exact, as is
    the sum): ``torch.where`` with a comparison costs ten times as much on one core.
    """
    if threshold == 128.0:
        inverted = torch.mul(x, 1.0 / 128.0).floor_().clamp_(0.0, 1.0)  # 1 at or above 128, else 0
        return inverted.mul_(torch.mul(x, -2.0).add_(255.0)).add_(x)
    return torch.where(x >= threshold, 255.0 - x, x)


def normalize(
    x: torch.Tensor,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel, into ``out`` when given.

    ``x`` is ``(..., 3, H, W)`` or ``(..., 1, H, W)`` (grey: the channel broadcasts); the result has three
    channels. A multiply into ``out`` and an add in place: three times faster than one ``addcmul`` with the
    broadcast constants.
    """
    bias, scale = _normalize_constants(tuple(mean), tuple(std), x.device)
    if out is None:
        out = x.new_empty((*x.shape[:-3], 3, *x.shape[-2:]))
    return torch.mul(x, scale, out=out).add_(bias)


@functools.lru_cache(maxsize=8)
def _normalize_constants(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    # per device too: normalising a batch on the GPU every step copies no constants there
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return (-m / s).to(device), (1.0 / (255.0 * s)).to(device)

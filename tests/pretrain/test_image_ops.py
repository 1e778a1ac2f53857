"""Tensor image operations of the views, each checked against the torchvision or PIL operation it replaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from saip_bench.errors import DataFormatError
from saip_bench.pretrain import image_ops as ops
from saip_bench.pretrain.views import IMAGENET_MEAN, IMAGENET_STD


def _float(seed: int = 0, size=(24, 16)) -> torch.Tensor:
    """A float image on the 0-255 scale."""
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (3, *size)).astype(np.float32))


def _uint8(seed: int = 0, size=(24, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.mark.parametrize("factor", [0.6, 1.0, 1.4])
def test_brightness_contrast_saturation_equal_torchvision(factor):
    x = _float(1)
    for ours, theirs in (
        (ops.adjust_brightness, TF.adjust_brightness),
        (ops.adjust_contrast, TF.adjust_contrast),
        (ops.adjust_saturation, TF.adjust_saturation),
    ):
        expected = theirs(x / 255, factor) * 255  # torchvision works on [0, 1] and clamps there
        # of 255; torchvision's luma weighs red 0.2989, PIL's (ours) 0.299
        torch.testing.assert_close(ours(x.clone(), factor), expected, atol=0.03, rtol=0)


def test_hue_rotation_is_close_to_the_hsv_hue_shift():
    from torchvision.transforms._functional_tensor import _rgb2hsv

    x = _float(2, (32, 32))
    hsv = _rgb2hsv(x / 255)
    colourful = (hsv[1] > 0.3) & (hsv[2] > 0.3)
    for shift in (-0.1, 0.05, 0.1):
        out = _rgb2hsv(ops.adjust_hue(x.clone(), shift) / 255)
        moved = ((out[0] - hsv[0] + 0.5) % 1 - 0.5)[colourful]
        assert abs(float(moved.mean()) - shift) < 0.01  # the requested turn of the colour circle
        assert float((moved - shift).abs().quantile(0.95)) < 0.03
        # torchvision's HSV shift changes only the hue; the rotation changes saturation and value a little
        assert float((out[1] - hsv[1])[colourful].abs().mean()) < 0.08  # (about 0.03 on person crops)
    torch.testing.assert_close(ops.hue_matrix(0.0), torch.eye(3), atol=1e-6, rtol=0)
    grey = torch.full((3, 4, 4), 77.0)
    torch.testing.assert_close(ops.adjust_hue(grey.clone(), 0.1), grey)  # greys stay grey
    red = torch.tensor([200.0, 0.0, 0.0]).view(3, 1, 1)
    turned = ops.adjust_hue(red.clone(), 0.05).flatten()
    assert turned[1] > turned[2]  # red turns towards yellow (green up), as an HSV hue increase does


def test_grayscale_and_solarize_equal_pil():
    arr = _uint8(3)
    x = torch.from_numpy(arr).permute(2, 0, 1).float()
    pil_gray = np.asarray(Image.fromarray(arr).convert("L"), dtype=np.float32)
    gray = ops.to_grayscale(x)
    assert gray.shape == (1, 24, 16)
    assert float((gray[0] - torch.from_numpy(pil_gray)).abs().max()) <= 0.5 + 1e-3  # PIL rounds
    solarized = np.asarray(ImageOps.solarize(Image.fromarray(arr), threshold=128)).transpose(2, 0, 1)
    assert torch.equal(ops.solarize(x), torch.from_numpy(solarized.astype(np.float32)))


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0])
def test_blur_is_a_normalised_gaussian(sigma):
    x = _float(4, (40, 30))
    out = ops.gaussian_blur(x, sigma)
    assert out.shape == x.shape
    radius = max(1, math.ceil(3 * sigma))
    expected = TF.gaussian_blur(x[None], [2 * radius + 1] * 2, [sigma, sigma])[0]  # reflect borders
    inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
    torch.testing.assert_close(out[inner], expected[inner], atol=1e-3, rtol=0)
    assert float(out.diff(dim=-1).abs().mean()) < float(x.diff(dim=-1).abs().mean())  # smoother
    flat = torch.full((3, 9, 7), 42.0)
    torch.testing.assert_close(ops.gaussian_blur(flat, sigma), flat)  # replicated borders: no darkening
    assert ops.gaussian_blur(x[:1], sigma).shape == (1, 40, 30)  # grey images blur one channel


def test_normalize_in_one_call_and_grey_broadcast():
    x = _float(5)
    expected = (x / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        3, 1, 1
    )
    torch.testing.assert_close(ops.normalize(x, IMAGENET_MEAN, IMAGENET_STD), expected)
    out = torch.empty(3, 24, 16)
    assert ops.normalize(x[:1], IMAGENET_MEAN, IMAGENET_STD, out=out) is out
    torch.testing.assert_close(out, ops.normalize(x[:1].expand(3, -1, -1), IMAGENET_MEAN, IMAGENET_STD))


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resized_crop_matches_pil(mode):
    arr = (np.add.outer(np.arange(60), np.arange(40)) * 2 % 256).astype(np.uint8)  # smooth, not flat
    arr = np.stack([arr, arr[::-1], 255 - arr], axis=-1)
    img = ops.to_uint8_tensor(Image.fromarray(arr))
    top, left, h, w = 5, 3, 40, 30
    out = ops.resized_crop(img, (top, left, h, w), (20, 12), interpolation=mode)
    assert out.dtype == torch.float32 and out.shape == (3, 20, 12) and out.is_contiguous()
    resample = Image.Resampling.BICUBIC if mode == "bicubic" else Image.Resampling.BILINEAR
    pil = Image.fromarray(arr).resize((12, 20), resample, box=(left, top, left + w, top + h))
    diff = out - torch.from_numpy(np.array(pil)).permute(2, 0, 1).float()
    assert float(diff.abs().mean()) < 1.0  # the same filter; PIL rounds to uint8
    same = ops.resized_crop(img, (top, left, 20, 12), (20, 12))  # no resample at the output size
    assert torch.equal(same, img[:, top : top + 20, left : left + 12].float())
    with pytest.raises(ValueError, match="interpolation"):
        ops.resized_crop(img, (0, 0, 4, 4), (2, 2), interpolation="nearest")


def test_read_image_formats_and_errors(tmp_path):
    arr = _uint8(6, (20, 12))
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.bmp")  # PIL's fallback
    Image.fromarray(arr[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    expected = torch.from_numpy(arr).permute(2, 0, 1)
    assert torch.equal(ops.read_image(tmp_path / "a.png"), expected)
    assert torch.equal(ops.read_image(tmp_path / "a.bmp"), expected)
    grey = ops.read_image(tmp_path / "grey.png")
    assert grey.shape == (3, 20, 12) and torch.equal(grey[0], grey[2])
    jpeg = ops.read_image(tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as im:
        pil = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    assert jpeg.dtype == torch.uint8 and float((jpeg.float() - pil.float()).abs().mean()) < 1.0
    data = (tmp_path / "a.jpg").read_bytes()
    for name, content in (("cut.jpg", data[: len(data) // 2]), ("junk.jpg", b"not an image")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataFormatError) as err:
            ops.read_image(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataFormatError, match="missing.jpg"):
        ops.read_image(tmp_path / "missing.jpg")


def test_to_uint8_tensor():
    arr = _uint8(7, (6, 4))
    t = ops.to_uint8_tensor(Image.fromarray(arr))
    assert t.shape == (3, 6, 4) and torch.equal(t.permute(1, 2, 0), torch.from_numpy(arr))
    assert ops.to_uint8_tensor(t) is t
    assert ops.to_uint8_tensor(t[:1]).shape == (3, 6, 4)
    with pytest.raises(ValueError, match="uint8"):
        ops.to_uint8_tensor(t.float())


@pytest.mark.parametrize(
    ("shape", "size"), [((3, 32, 16), (16, 8)), ((3, 12, 9), (4, 3)), ((3, 30, 20), (7, 5))]
)
def test_area_downsample_equals_torch_area_interpolation(shape, size):
    x = _float(8, shape[1:])
    expected = torch.nn.functional.interpolate(x[None], size=size, mode="area")[0]
    torch.testing.assert_close(ops.area_downsample(x, size), expected)
    out = torch.empty(3, *size)
    assert ops.area_downsample(x, size, out=out) is out
    torch.testing.assert_close(out, expected)


def test_solarize_is_exact_at_the_threshold():
    x = _float(9)
    x[0, 0, :8] = torch.tensor([0.0, 127.5, 127.99999, 128.0, 128.00002, 200.3, 255.0, 64.0])
    torch.testing.assert_close(ops.solarize(x), torch.where(x >= 128, 255.0 - x, x), atol=0, rtol=0)
    torch.testing.assert_close(ops.solarize(x, 100.0), torch.where(x >= 100, 255.0 - x, x), atol=0, rtol=0)


def _sequential(x: torch.Tensor, steps) -> torch.Tensor:
    """The colour operations one by one (the reference the composed map must equal)."""
    by_name = {
        "brightness": ops.adjust_brightness,
        "contrast": ops.adjust_contrast,
        "saturation": ops.adjust_saturation,
        "hue": ops.adjust_hue,
    }
    for name, factor in steps:
        x = by_name[name](x, factor)
    return x


def _composed(x: torch.Tensor, steps) -> tuple[torch.Tensor, ops.ColourMap]:
    """The same steps through a ColourMap, applied only at the clamps (as the views do)."""
    colour, means = ops.ColourMap(), None
    for name, factor in steps:
        if name == "hue":
            x, means = ops.apply_hue(x, factor, colour), None
            continue
        if name == "brightness":
            colour.scale(factor)
        elif name == "contrast":
            means = means or ops.channel_means(x)
            colour.blend_with_mean(factor, means)
        else:
            colour.saturate(factor)
        if factor > 1:
            x, means = colour.apply(x, clamp=True), None
    return x, colour


@pytest.mark.parametrize("seed", range(6))
def test_a_composed_colour_run_equals_the_operations_one_by_one(seed):
    rng = np.random.default_rng(seed)
    x = _float(seed, (20, 12))
    names = ["brightness", "contrast", "saturation", "hue"]
    steps = [
        (names[i], float(rng.uniform(-0.1, 0.1) if names[i] == "hue" else rng.uniform(0.6, 1.4)))
        for i in rng.permutation(4)
    ]
    expected = _sequential(x.clone(), steps)
    got, colour = _composed(x.clone(), steps)
    out = torch.empty(3, 20, 12)
    assert ops.normalize_mapped(got, colour, IMAGENET_MEAN, IMAGENET_STD, out=out) is out
    torch.testing.assert_close(out, ops.normalize(expected, IMAGENET_MEAN, IMAGENET_STD), atol=3e-5, rtol=0)
    row, c = colour.grey_row()
    torch.testing.assert_close(ops.colour_plane(got, row, c), ops.to_grayscale(expected), atol=2e-3, rtol=0)
    # of 255: float32 rounding only (the clamps are where they were)
    torch.testing.assert_close(colour.apply(got), expected, atol=2e-3, rtol=0)


def test_colour_map_of_factors_below_one_never_clamps_and_identity_is_free():
    x = _float(10)
    colour = ops.ColourMap()
    assert colour.is_identity() and colour.apply(x) is x
    steps = [("contrast", 0.7), ("brightness", 0.8), ("saturation", 0.9)]
    got, colour = _composed(x.clone(), steps)
    assert torch.equal(got, x) and not colour.is_identity()  # nothing applied yet: one blend at the end
    torch.testing.assert_close(colour.apply(got), _sequential(x.clone(), steps), atol=2e-3, rtol=0)
    assert colour.is_identity()  # applying resets the map

"""Rasterising shapes twice: colour into the RGB image, and (instance, group, part code) into an int32 image.

Every shape of a person goes through :class:`Painter`, so the part mask, the instance mask and the occlusion
groups used for keypoint visibility are drawn with exactly the shapes of the picture.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Part codes below 20 are LIP ids; the codes above mark garment pixels that get a pattern afterwards.
C_UPPER_PAT, C_LOWER_PAT, C_SKIRT_PAT = 20, 21, 22
PART_LUT = np.arange(256, dtype=np.uint8)
PART_LUT[20:] = 0
PART_LUT[C_UPPER_PAT], PART_LUT[C_LOWER_PAT], PART_LUT[C_SKIRT_PAT] = 5, 9, 12

# LIP ids by name, for readable drawing code.
HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS = 1, 2, 3, 4, 5, 6, 7, 8, 9
SCARF, SKIRT, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 11, 12, 13, 14, 15, 16, 17, 18, 19


class Painter:
    """Draws one shape into the colour image and the code image at once.

    Args:
        rgb: The picture (drawn in place).
        code: An ``"I"`` image of the same size; each pixel gets ``inst << 16 | group << 8 | part``.
        offset: Added to every coordinate (lets a person be drawn again into a local canvas).
        silhouette: Optional ``"L"`` image that receives 255 for every shape (the person's unoccluded area).
    """

    def __init__(
        self,
        rgb: Image.Image | None,
        code: Image.Image | None,
        *,
        inst: int = 1,
        offset: tuple[float, float] = (0.0, 0.0),
        silhouette: tuple[Image.Image, tuple[float, float]] | None = None,
    ) -> None:
        self._rgb = ImageDraw.Draw(rgb) if rgb is not None else None
        self._code = ImageDraw.Draw(code) if code is not None else None
        self._inst = inst << 16
        self._sil = ImageDraw.Draw(silhouette[0]) if silhouette is not None else None
        self._sil_off = silhouette[1] if silhouette is not None else (0.0, 0.0)

    def _targets(self, rgb: tuple[int, int, int], part: int, group: int):
        value = self._inst | (group << 8) | part
        if self._rgb is not None:
            yield self._rgb, rgb, (0.0, 0.0)
        if self._code is not None:
            yield self._code, value, (0.0, 0.0)
        if self._sil is not None:
            yield self._sil, 255, self._sil_off

    @staticmethod
    def _shift(pts, off):
        if off == (0.0, 0.0):
            return pts
        return [(x + off[0], y + off[1]) for x, y in pts]

    def polygon(self, pts, rgb, part: int, group: int) -> None:
        """Filled polygon through ``pts`` (a sequence of (x, y))."""
        pts = [(float(x), float(y)) for x, y in pts]
        for draw, fill, off in self._targets(rgb, part, group):
            draw.polygon(self._shift(pts, off), fill=fill)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, rgb, part: int, group: int) -> None:
        """Filled axis-aligned ellipse."""
        rx, ry = max(rx, 0.5), max(ry, 0.5)
        for draw, fill, off in self._targets(rgb, part, group):
            x, y = cx + off[0], cy + off[1]
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=fill)

    def limb(self, a, b, width: float, rgb, part: int, group: int, *, caps: bool = True) -> None:
        """A thick segment from ``a`` to ``b`` with round ends (a capsule)."""
        width = max(width, 1.0)
        r = width / 2
        pts = [(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))]
        for draw, fill, off in self._targets(rgb, part, group):
            p = self._shift(pts, off)
            draw.line(p, fill=fill, width=max(1, round(width)))
            if caps:
                for x, y in p:
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def line(self, pts, width: float, rgb, part: int, group: int) -> None:
        """A thin polyline (straps, seams, stripes)."""
        pts = [(float(x), float(y)) for x, y in pts]
        for draw, fill, off in self._targets(rgb, part, group):
            draw.line(self._shift(pts, off), fill=fill, width=max(1, round(width)))


def apply_patterns(img: np.ndarray, codes: np.ndarray, patterns: list[dict]) -> None:
    """Paint the garment patterns onto the pixels whose part code asks for one; in place.

    Each pattern dict: ``code`` (part code), ``kind`` (stripes / plaid / splice / dots), ``colour`` (RGB),
    ``period`` (pixels), ``origin`` ((x, y) the pattern is anchored to, so it moves with the body), and for
    splice ``split_y``; ``inst`` restricts it to one person's pixels.
    """
    if not patterns:
        return
    part = codes & 0xFF
    for pat in patterns:
        sel = part == pat["code"]
        if "inst" in pat:
            sel &= (codes >> 16) == pat["inst"]
        ys, xs = np.nonzero(sel)
        if len(ys) == 0:
            continue
        period = max(float(pat["period"]), 2.0)
        ox, oy = pat["origin"]
        if pat["kind"] == "stripes":
            on = ((ys - oy) / period) % 1.0 < 0.45
        elif pat["kind"] == "plaid":
            on = (((ys - oy) / period) % 1.0 < 0.28) | (((xs - ox) / period) % 1.0 < 0.28)
        elif pat["kind"] == "splice":
            on = ys > pat["split_y"]
        else:  # dots
            fx, fy = ((xs - ox) / period) % 1.0 - 0.5, ((ys - oy) / period) % 1.0 - 0.5
            on = fx * fx + fy * fy < 0.09
        img[ys[on], xs[on]] = pat["colour"]


def shade_people(img: np.ndarray, codes: np.ndarray, light: float, cx: float | None = None) -> None:
    """Side lighting: people get brighter towards ``light``'s side and darker towards their feet; in place.

    Args:
        img: ``(H, W, 3)`` uint8 picture.
        codes: The code image; only pixels with a code (people) are shaded.
        light: -1..1, the strength and side (negative = from the left) of the light.
        cx: Column the gradient is centred on (default: the image centre).
    """
    h, w = codes.shape
    ys, xs = np.nonzero(codes)
    if len(ys) == 0:
        return
    cx = w / 2 if cx is None else cx
    factor = 1.0 + light * (xs - cx) / max(w, 1) - 0.12 * (ys - ys.min()) / max(h, 1)
    px = img[ys, xs].astype(np.float32) * factor[:, None].astype(np.float32)
    img[ys, xs] = np.clip(px, 0, 255).astype(np.uint8)

"""Backgrounds: gradients, textures, street-like and indoor-like scenes, drawn with PIL and numpy."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("gradient", "texture", "street", "indoor")


def _rgb(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def camera_style(rng: np.random.Generator) -> dict:
    """A camera's look: background kind and palette, colour cast, brightness, sharpness, framing."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    cast = rng.uniform(0.85, 1.15, size=3)
    return {
        "kind": kind,
        "colours": [_rgb(rng) for _ in range(4)],
        "gain": tuple(float(v) for v in cast / cast.mean() * rng.uniform(0.8, 1.15)),
        "blur": bool(rng.random() < 0.35),
        "noise": float(rng.uniform(2.0, 9.0)),
        "scale": float(rng.uniform(0.93, 1.05)),
        "horizon": float(rng.uniform(0.35, 0.65)),
    }


def render_background(
    rng: np.random.Generator, size: tuple[int, int], style: dict | None = None
) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 background; ``style`` (from :func:`camera_style`) or a random one."""
    style = style or camera_style(rng)
    h, w = size
    cols = [_mix(c, _rgb(rng), 0.25) for c in style["colours"]]
    kind = style["kind"]
    img = Image.new("RGB", (w, h), cols[0])
    draw = ImageDraw.Draw(img)
    horizon = int(h * np.clip(style["horizon"] + rng.uniform(-0.08, 0.08), 0.2, 0.8))
    if kind == "gradient":
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        arr = (np.asarray(cols[0], np.float32) * (1 - t) + np.asarray(cols[1], np.float32) * t).repeat(w, 1)
        img = Image.fromarray(arr.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(0, 4))):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * w
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_mix(cols[2], cols[0], 0.6))
    elif kind == "texture":
        small = rng.integers(0, 255, size=(max(2, h // 24), max(2, w // 24), 3)).astype(np.uint8)
        tex = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), dtype=np.float32)
        base = np.asarray(cols[0], np.float32)
        arr = base * 0.6 + tex * 0.25 + np.asarray(cols[1], np.float32) * 0.15
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
    elif kind == "street":
        draw.rectangle((0, 0, w, horizon), fill=cols[0])  # buildings
        x = -rng.uniform(0, 0.3) * w
        while x < w:
            bw = rng.uniform(0.3, 0.9) * w
            top = rng.uniform(0.0, 0.4) * horizon
            bcol = _mix(cols[0], _rgb(rng), 0.4)
            draw.rectangle((x, top, x + bw, horizon), fill=bcol)
            step = max(6.0, rng.uniform(0.08, 0.16) * w)
            win = _mix(bcol, (30, 40, 60) if rng.random() < 0.5 else (220, 220, 200), 0.5)
            for wy in np.arange(top + step * 0.4, horizon - step * 0.5, step):
                for wx in np.arange(x + step * 0.3, x + bw - step * 0.5, step):
                    draw.rectangle((wx, wy, wx + step * 0.45, wy + step * 0.55), fill=win)
            x += bw
        draw.rectangle((0, horizon, w, h), fill=cols[1])  # pavement
        for _ in range(int(rng.integers(0, 3))):
            px = rng.uniform(0, w)
            draw.rectangle(
                (px, horizon * rng.uniform(0.2, 0.7), px + rng.uniform(2, 0.05 * w + 3), horizon + 0.1 * h),
                fill=cols[3],
            )
        for ly in np.arange(horizon + 0.15 * h, h, 0.2 * h):
            draw.line(
                (0, ly, w, ly + rng.uniform(-0.05, 0.05) * h),
                fill=_mix(cols[1], (240, 240, 240), 0.4),
                width=max(1, h // 100),
            )
    else:  # indoor: wall, floor tiles, a shop window
        draw.rectangle((0, horizon, w, h), fill=cols[1])
        tile = max(6.0, rng.uniform(0.06, 0.15) * w)
        line = _mix(cols[1], (0, 0, 0), 0.25)
        for gx in np.arange(-rng.uniform(0, tile), w, tile):
            draw.line((gx, horizon, gx + (gx - w / 2) * 0.5, h), fill=line, width=1)
        for gy in np.arange(horizon, h, tile * 0.5):
            draw.line((0, gy, w, gy), fill=line, width=1)
        wx = rng.uniform(-0.2, 0.6) * w
        draw.rectangle(
            (wx, 0.15 * horizon, wx + rng.uniform(0.3, 0.7) * w, 0.9 * horizon),
            fill=_mix(cols[2], (200, 220, 240), 0.5),
        )
    return np.asarray(img, dtype=np.uint8)


def apply_camera(img: np.ndarray, style: dict, rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """The camera's colour cast, brightness jitter, optional softness and sensor noise; returns a new array.

    Args:
        img: ``(H, W, 3)`` uint8 picture.
        style: From :func:`camera_style`.
        rng: Per-image jitter.
        noise: A float32 noise field at least as large as ``img`` (unit variance), cropped at random.
    """
    h, w = img.shape[:2]
    gain = np.asarray(style["gain"], np.float32) * np.float32(rng.uniform(0.88, 1.12))
    lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain[None, :], 0, 255).astype(np.uint8)
    pil = Image.fromarray(img).point(lut.T.reshape(-1).tolist())
    if style["blur"]:
        pil = pil.resize((max(1, w * 2 // 3), max(1, h * 2 // 3)), Image.BILINEAR).resize(
            (w, h), Image.BILINEAR
        )
    out = np.asarray(pil, dtype=np.int16)
    y0 = int(rng.integers(0, noise.shape[0] - h + 1))
    x0 = int(rng.integers(0, noise.shape[1] - w + 1))
    out = out + (noise[y0 : y0 + h, x0 : x0 + w] * style["noise"]).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)

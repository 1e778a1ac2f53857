"""What every synthetic dataset writer does the same way: encode images and refuse to write over data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.errors import SaipError


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    """An ``(H, W, 3)`` uint8 image as JPEG file bytes (the releases' crops are JPEGs)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(ids: np.ndarray) -> bytes:
    """A ``(H, W)`` uint8 id map as an 8-bit greyscale PNG (the parsing releases' label format)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def require_empty(out: Path, dataset: str) -> None:
    """Refuse to write ``dataset`` into ``out`` if it holds anything: it could be a real dataset."""
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write {dataset} over it")

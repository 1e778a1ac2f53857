"""Shared by every task's images: normalisation, reading with one-line errors, the person transforms."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from torchvision import transforms as T

from saip_bench.errors import DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageReadError(DataFormatError):
    """An image file is missing or cannot be decoded.

    A DataLoader worker's exception reaches the main process rebuilt from its formatted traceback; torch's
    ExceptionWrapper calls ``cls(message=traceback_text)`` for classes with a ``message`` attribute, and the
    last "path: problem" line is recovered from it, so the user still gets one line naming the file.
    """

    message = "image read error"

    def __init__(
        self, path: str | Path | None = None, problem: str | None = None, *, message: str | None = None
    ) -> None:
        if message is not None:
            tag = f"{type(self).__name__}: "
            last = [line for line in message.splitlines() if tag in line]
            text = last[-1].split(tag, 1)[1] if last else message.strip().splitlines()[-1]
            path, _, problem = text.partition(": ")
        super().__init__(path or "?", problem or "cannot read image")


def read_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` as RGB, fully decoded; a missing or corrupt file raises :class:`ImageReadError`."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(path, "image file is missing") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(path, f"cannot decode image ({err})") from None


def eval_transform(img_size: tuple[int, int]) -> T.Compose:
    """Resize to ``(H, W)`` and normalise."""
    return T.Compose([T.Resize(tuple(img_size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(img_size: tuple[int, int], *, pad: int = 10, flip: float = 0.5) -> T.Compose:
    """The field's light person augmentation (Rethinking_of_PAR, IRRA): resize, pad + random crop, flip."""
    steps: list = [T.Resize(tuple(img_size))]
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop(tuple(img_size))]
    if flip > 0:
        steps.append(T.RandomHorizontalFlip(flip))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)

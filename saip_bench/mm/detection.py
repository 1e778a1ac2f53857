"""mmdet glue shared by the detection task (RetinaNet, CrowdHuman) and the fashion task (Mask R-CNN,
Fashionpedia): what both detectors need around the suite's backbone, written once.

- **Model**: :func:`pyramid_backbone` is the ``backbone=`` entry of an mmdet config (our ViT under
  ``SaipBackbone`` with the ViTDet simple feature pyramid); :func:`build_detector` builds a config through
  mmdet's registry and runs mmdet's weight initialisation quietly (``SaipBackbone`` keeps its loaded weights).
- **Inputs**: :func:`letterbox` resizes an image to fit the recipe size keeping its aspect ratio, optionally
  mirrors it, normalises it (ImageNet mean/std) and pads it bottom-right with zeros to exactly ``img_size``
  (the ViT's position embedding is laid out for it; zeros after normalisation are mmdet's ``pad_value=0`` on
  normalised inputs). :func:`map_boxes` moves ``x1, y1, x2, y2`` boxes the same way, :func:`det_sample` builds
  the ``DetDataSample`` whose metainfo mmdet's heads read, and :func:`collate` batches ``(image, sample)``.
- **Training and inference**: :class:`DetectorTask` is the task template for an mmdet detector: its
  ``train_step`` is :func:`detector_losses` (mmdet's loss dict summed into the engine's named terms) and
  :func:`predict` yields one prediction per test image.

``scale_factor`` is mmdet's: ``(new_w / w, new_h / h)``, the per-axis factors of the resize (the rounded
output size makes them differ slightly); boxes are scaled by it, and ``predict(rescale=True)`` divides by it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD
from saip_bench.evaluate.task import Task

if TYPE_CHECKING:
    from saip_bench.evaluate.adapter import EvalRequest

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


# ------------------------------------------------------------------------------------------------- model
def pyramid_backbone(backbone: Any, strides: Sequence[int], channels: int) -> dict[str, Any]:
    """The ``backbone=`` entry of an mmdet config: ``backbone`` (a loaded
    :class:`saip_bench.backbones.Backbone`) plus the ViTDet simple pyramid at ``strides`` with ``channels``.

    Its parameters are named ``backbone.backbone.<timm names>`` inside the detector (``...blocks.N...`` for a
    ViT), so the engine's layer decay finds the blocks; the pyramid (``backbone.neck``) counts as the layer
    after the last block.
    """
    return dict(
        type="SaipBackbone", backbone=backbone, out="pyramid", strides=[int(s) for s in strides],
        out_channels=int(channels),
    )  # fmt: skip


def build_detector(config: dict[str, Any]) -> nn.Module:
    """Build an mmdet detector from ``config`` (plain dicts; mmdet's two-stage detectors need them as a
    ``ConfigDict``, which this does) and initialise its new layers.

    Raises:
        saip_bench.errors.SaipError: mmdet (or mmcv/mmengine) is not installed.
    """
    from saip_bench.mm import setup_mm

    setup_mm("mmdet")
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger

    model = MODELS.build(ConfigDict(config))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs one INFO paragraph per parameter
    try:
        model.init_weights()  # the heads' initialisation (e.g. the focal-loss prior)
    finally:
        logger.setLevel(level)
    return model


def sum_losses(losses: dict[str, Any]) -> dict[str, torch.Tensor]:
    """mmdet's loss dict -> the engine's named terms: each ``loss*`` term summed over its levels (mmdet
    returns per-level lists for some heads; other keys such as ``acc`` are metrics and left out) and
    ``loss``, the sum of the terms, which is what the engine optimises."""
    terms: dict[str, torch.Tensor] = {}
    for name, value in losses.items():
        parts = value if isinstance(value, (list, tuple)) else [value]
        if "loss" not in name or not parts:
            continue
        total = parts[0].sum()
        for part in parts[1:]:
            total = total + part.sum()
        terms[name] = total
    return {"loss": sum(terms.values()), **terms}  # type: ignore[dict-item]


def detector_losses(
    model: nn.Module, inputs: torch.Tensor, samples: Sequence[Any]
) -> dict[str, torch.Tensor]:
    """The named losses of one batch (:func:`sum_losses` of mmdet's ``loss``).

    Called through ``model(..., mode="loss")`` so that a DistributedDataParallel wrapper syncs gradients.
    """
    return sum_losses(model(inputs, [s.to(inputs.device) for s in samples], mode="loss"))


def predict(
    model: nn.Module, loader: DataLoader, device: torch.device | str, *, rescale: bool
) -> Iterator[Any]:
    """mmdet's prediction ``DetDataSample`` of each image of ``loader``, in order.

    Args:
        model: the detector (eval mode; the caller holds ``torch.no_grad``).
        loader: batches of :func:`collate`.
        device: where the model is.
        rescale: ``True``: boxes (and masks) in original image pixels (mmdet divides by ``scale_factor``
            before its NMS); ``False``: in input pixels.
    """
    device = torch.device(device)
    for images, samples in loader:
        yield from model.predict(images.to(device), [s.to(device) for s in samples], rescale=rescale)


# ------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Letterboxed:
    """An image resized into the recipe size (see :func:`letterbox`).

    Attributes:
        image: ``(3, H, W)`` normalised float tensor, zero-padded bottom-right to ``img_size``.
        ori_shape: ``(h, w)`` of the original image.
        img_shape: ``(new_h, new_w)`` of the resized image inside the padding.
        pad_shape: ``(H, W)``, the recipe size.
        scale_factor: mmdet's ``(new_w / w, new_h / h)``.
        flip: whether the image was mirrored (left-right, within ``img_shape``).
    """

    image: torch.Tensor
    ori_shape: tuple[int, int]
    img_shape: tuple[int, int]
    pad_shape: tuple[int, int]
    scale_factor: tuple[float, float]
    flip: bool


def draw_flip(probability: float) -> bool:
    """A horizontal flip with ``probability``, drawn from torch's RNG like torchvision's flip (a seeded
    DataLoader generator reseeds it per worker and epoch, so training repeats); no draw when it is 0."""
    return probability > 0 and float(torch.rand(())) < probability


def letterbox(img: Image.Image, img_size: Sequence[int], *, flip: bool = False) -> Letterboxed:
    """Resize ``img`` to fit ``img_size`` ``(H, W)`` keeping its aspect ratio (bilinear), mirror it if
    ``flip``, normalise it with the ImageNet mean/std and pad it bottom-right with zeros to ``img_size``."""
    pad_h, pad_w = int(img_size[0]), int(img_size[1])
    width, height = img.size
    scale = min(pad_h / height, pad_w / width)
    new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    resized = img.resize((new_w, new_h), Image.BILINEAR)
    if flip:
        resized = resized.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    image = torch.zeros(3, pad_h, pad_w)
    image[:, :new_h, :new_w] = (pixels - _MEAN) / _STD
    return Letterboxed(
        image=image, ori_shape=(height, width), img_shape=(new_h, new_w), pad_shape=(pad_h, pad_w),
        scale_factor=(new_w / width, new_h / height), flip=bool(flip),
    )  # fmt: skip


def map_boxes(boxes: np.ndarray | torch.Tensor, view: Letterboxed) -> torch.Tensor:
    """``(N, 4)`` ``x1, y1, x2, y2`` boxes of the original image -> float32 boxes of ``view``'s input pixels
    (scaled per axis, mirrored within the resized width when ``view.flip``); not clipped."""
    out = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
    w_scale, h_scale = view.scale_factor
    out = out * torch.tensor([w_scale, h_scale, w_scale, h_scale], dtype=torch.float32)
    if view.flip:
        new_w = view.img_shape[1]
        out = torch.stack([new_w - out[:, 2], out[:, 1], new_w - out[:, 0], out[:, 3]], dim=1)
    return out


def det_sample(view: Letterboxed, img_id: Any, **metainfo: Any) -> Any:
    """An mmdet ``DetDataSample`` carrying what mmdet's heads read of ``view`` (``ori_shape``, ``img_shape``,
    ``pad_shape``, ``batch_input_shape``, ``scale_factor``, ``flip``, ``flip_direction``), ``img_id`` and any
    further ``metainfo``; the caller adds its instances."""
    from mmdet.structures import DetDataSample

    return DetDataSample(
        metainfo={
            "img_id": img_id,
            "ori_shape": view.ori_shape,
            "img_shape": view.img_shape,
            "pad_shape": view.pad_shape,
            "batch_input_shape": view.pad_shape,  # every image is padded to the recipe size
            "scale_factor": view.scale_factor,
            "flip": view.flip,
            "flip_direction": "horizontal" if view.flip else None,
            **metainfo,
        }
    )


def collate(batch: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[Any]]:
    """Stack the (equally padded) images; keep the data samples as a list
    (mmdet's ``model.loss(inputs, data_samples)``)."""
    return torch.stack([image for image, _ in batch]), [sample for _, sample in batch]


def inference_loader(dataset: Dataset, *, batch_size: int, workers: int) -> DataLoader:
    """The test loader: the dataset in order, batched by :func:`collate`."""
    from saip_bench.engine import loader_workers

    return DataLoader(
        dataset, batch_size=int(batch_size), shuffle=False, num_workers=loader_workers(int(workers)),
        collate_fn=collate,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------- task
class DetectorTask(Task):
    """The task template for an mmdet detector: batches of :func:`collate`, the loss of
    :func:`detector_losses`; a subclass supplies its data, its detector config and its metrics.

    The engine runs with ``seed + 1`` (:attr:`Task.fit_seed_offset`): the detection and fashion numbers were
    trained so before the template, with the model built under ``seed``.
    """

    fit_seed_offset: ClassVar[int] = 1

    def collate(self, samples: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        return collate(samples)

    def train_step(
        self, request: EvalRequest, model: nn.Module, batch: tuple[torch.Tensor, list[Any]]
    ) -> dict[str, torch.Tensor]:
        images, samples = batch
        return detector_losses(model, images, samples)

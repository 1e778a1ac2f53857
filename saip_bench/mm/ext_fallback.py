"""A stand-in for mmcv's compiled ``mmcv._ext`` built on torchvision, for installs with ``mmcv-lite``.

``mmcv.ops`` (and through it ``mmdet.models`` and ``mmpose.models``) imports the compiled extension at import
time, even where no op is ever called. ``mmcv-lite`` ships no extension, so those imports fail. This module
provides the two ops the suite's detectors use, ``nms`` and average-mode ``roi_align`` (forward and backward),
computed by torchvision, and answers every other name with a function that raises a clear
:class:`NotImplementedError` when called (so ``mmcv.utils.ext_loader``'s ``hasattr`` checks pass at import).

It is installed only when the real extension cannot be imported (see :func:`saip_bench.mm.setup_mm`); a
compiled mmcv always wins.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import torch

MODULE_NAME = "mmcv._ext"
#: Marks the stand-in module so callers can tell it from the compiled one.
STAND_IN_FLAG = "__saip_bench_stand_in__"
#: What a user who needs another op must do (every NotImplementedError of the stand-in ends with it).
COMPILED_HINT = (
    "install a compiled mmcv 2.0-2.1 instead of mmcv-lite (pip uninstall -y mmcv-lite, then build mmcv with "
    "MMCV_WITH_OPS=1; see README, 'The OpenMMLab stack')"
)


def nms(bboxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int = 0) -> torch.Tensor:
    """Indices kept by greedy NMS, in decreasing score order (mmcv's ``ext_module.nms`` contract)."""
    import torchvision

    boxes = bboxes.float()
    if offset:
        # mmcv's legacy ``offset=1`` counts pixels inclusively: widen x2/y2 by one to get the same areas.
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:4] + float(offset)], dim=1)
    return torchvision.ops.nms(boxes, scores.float(), float(iou_threshold))


def _check_avg(pool_mode: int) -> None:
    if int(pool_mode) != 1:
        raise NotImplementedError(
            "roi_align with pool_mode='max' needs the compiled mmcv ops; the torchvision stand-in "
            f"(saip_bench.mm, used with mmcv-lite) supports pool_mode='avg' only: {COMPILED_HINT}"
        )


def roi_align_forward(
    input: torch.Tensor,
    rois: torch.Tensor,
    output: torch.Tensor,
    argmax_y: torch.Tensor,
    argmax_x: torch.Tensor,
    *,
    aligned_height: int,
    aligned_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    pool_mode: int,
    aligned: bool,
) -> None:
    """Fill ``output`` with RoIAlign of ``input`` at ``rois`` ``(K, 5)`` = (batch index, x1, y1, x2, y2)."""
    import torchvision

    _check_avg(pool_mode)
    result = torchvision.ops.roi_align(
        input,
        rois.to(input.dtype),
        (int(aligned_height), int(aligned_width)),
        spatial_scale=float(spatial_scale),
        sampling_ratio=int(sampling_ratio),
        aligned=bool(aligned),
    )
    output.copy_(result)


def roi_align_backward(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    argmax_y: torch.Tensor,
    argmax_x: torch.Tensor,
    grad_input: torch.Tensor,
    *,
    aligned_height: int,
    aligned_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    pool_mode: int,
    aligned: bool,
) -> None:
    """Fill ``grad_input`` with the gradient of :func:`roi_align_forward` for ``grad_output``."""
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    _check_avg(pool_mode)
    batch, channels, height, width = grad_input.shape
    grad = torch.ops.torchvision._roi_align_backward(
        grad_output.contiguous(),
        rois.to(grad_output.dtype),
        float(spatial_scale),
        int(aligned_height),
        int(aligned_width),
        int(batch),
        int(channels),
        int(height),
        int(width),
        int(sampling_ratio),
        bool(aligned),
    )
    grad_input.copy_(grad)


_PROVIDED: dict[str, Callable[..., Any]] = {
    "nms": nms,
    "roi_align_forward": roi_align_forward,
    "roi_align_backward": roi_align_backward,
}


def _missing_op(name: str) -> Callable[..., Any]:
    def op(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"mmcv op {name!r} needs the compiled mmcv extension; this install uses mmcv-lite with "
            f"saip_bench's torchvision stand-in, which provides only nms and roi_align (avg); for every op, "
            f"{COMPILED_HINT}"
        )

    op.__name__ = name
    return op


def build_module() -> types.ModuleType:
    """The stand-in ``mmcv._ext`` module (not yet installed in ``sys.modules``)."""
    module = types.ModuleType(MODULE_NAME, __doc__)
    for name, fn in _PROVIDED.items():
        setattr(module, name, fn)
    setattr(module, STAND_IN_FLAG, True)

    def __getattr__(name: str) -> Any:  # noqa: N807  (module-level __getattr__, PEP 562)
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing_op(name)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def install() -> bool:
    """Install the stand-in as ``mmcv._ext`` unless a compiled extension imports; True if installed."""
    import importlib

    current = sys.modules.get(MODULE_NAME)
    if current is not None:
        return bool(getattr(current, STAND_IN_FLAG, False))
    try:
        importlib.import_module(MODULE_NAME)
        return False
    except ImportError:
        pass
    module = build_module()
    sys.modules[MODULE_NAME] = module
    import mmcv

    mmcv._ext = module  # type: ignore[attr-defined]
    return True

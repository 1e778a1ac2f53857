"""The torchvision stand-in for ``mmcv._ext``, exercised through mmcv's own Python ops.

Every call goes through the real ``mmcv.ops`` code (``nms``, ``batched_nms``, ``RoIAlign``/``roi_align``),
whose ``ext_module`` is pointed at a freshly built stand-in, so the tests check the stand-in whether this
install has mmcv-lite (the stand-in is what runs) or a compiled mmcv. References: ``torchvision.ops`` and,
for mmcv's legacy ``offset=1`` NMS and the ``aligned`` sampling convention, small hand-written
implementations of mmcv's documented semantics.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator

import pytest
import torch
import torchvision

from saip_bench.mm import ext_fallback

OP_MODULES = ("mmcv.ops.nms", "mmcv.ops.roi_align", "mmcv.ops.deform_conv")


@pytest.fixture(scope="module")
def mmcv_ops() -> types.ModuleType:
    """``mmcv.ops``, importable on mmcv-lite once the stand-in is installed (a compiled ext wins)."""
    ext_fallback.install()
    return importlib.import_module("mmcv.ops")


@pytest.fixture
def stand_in(mmcv_ops: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fresh stand-in module as the ``ext_module`` of the mmcv op modules under test."""
    module = ext_fallback.build_module()
    for name in OP_MODULES:
        monkeypatch.setattr(sys.modules[name], "ext_module", module)
    return module


def _random_boxes(n: int, generator: torch.Generator, *, size: float = 64.0) -> torch.Tensor:
    """``(n, 4)`` xyxy boxes clustered in a small canvas, so many pairs overlap near every threshold."""
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * size / 2 + 1.0
    return torch.cat([xy, xy + wh], dim=1)


def _legacy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """mmcv's ``offset=1`` greedy NMS written out: widths and heights count pixels inclusively (x2-x1+1)."""
    b = boxes.double().tolist()
    order = scores.argsort(descending=True).tolist()
    kept: list[int] = []
    for i in order:
        x1, y1, x2, y2 = b[i]
        area_i = (x2 - x1 + 1) * (y2 - y1 + 1)
        suppressed = False
        for k in kept:
            u1, v1, u2, v2 = b[k]
            w = max(0.0, min(x2, u2) - max(x1, u1) + 1)
            h = max(0.0, min(y2, v2) - max(y1, v1) + 1)
            inter = w * h
            if inter / (area_i + (u2 - u1 + 1) * (v2 - v1 + 1) - inter) > threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_keeps_torchvision_indices(stand_in: types.ModuleType, seed: int, threshold: float) -> None:
    from mmcv.ops import nms

    g = torch.Generator().manual_seed(seed)
    boxes, scores = _random_boxes(200, g), torch.rand(200, generator=g)
    dets, keep = nms(boxes, scores, threshold)
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert 1 < len(keep) < 200  # the threshold matters on these boxes
    assert torch.equal(keep, expected)
    assert torch.equal(dets, torch.cat([boxes[expected], scores[expected, None]], dim=1))


def test_nms_numpy_input_score_threshold_and_max_num(stand_in: types.ModuleType) -> None:
    from mmcv.ops import nms

    g = torch.Generator().manual_seed(3)
    boxes, scores = _random_boxes(100, g), torch.rand(100, generator=g)
    _, keep = nms(boxes.numpy(), scores.numpy(), 0.5, score_threshold=0.4, max_num=5)
    valid = torch.nonzero(scores > 0.4).squeeze(1)
    expected = valid[torchvision.ops.nms(boxes[valid], scores[valid], 0.5)][:5]
    assert keep.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_nms_legacy_offset_one(stand_in: types.ModuleType, seed: int, threshold: float) -> None:
    from mmcv.ops import nms

    g = torch.Generator().manual_seed(seed)
    boxes, scores = _random_boxes(150, g, size=24.0), torch.rand(150, generator=g)
    _, keep = nms(boxes, scores, threshold, offset=1)
    widened = boxes.clone()
    widened[:, 2:] += 1
    assert torch.equal(keep, torchvision.ops.nms(widened, scores, threshold))
    assert keep.tolist() == _legacy_nms(boxes, scores, threshold)
    # The offset matters on these small boxes: without it some other set survives.
    assert not torch.equal(keep, torchvision.ops.nms(boxes, scores, threshold))


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_batched_nms_equals_torchvision(stand_in: types.ModuleType, class_agnostic: bool) -> None:
    from mmcv.ops import batched_nms

    g = torch.Generator().manual_seed(4)
    boxes, scores = _random_boxes(300, g), torch.rand(300, generator=g)
    labels = torch.randint(0, 5, (300,), generator=g)
    dets, keep = batched_nms(
        boxes, scores, labels, {"type": "nms", "iou_threshold": 0.5}, class_agnostic=class_agnostic
    )
    expected = (
        torchvision.ops.nms(boxes, scores, 0.5)
        if class_agnostic
        else torchvision.ops.batched_nms(boxes, scores, labels, 0.5)
    )
    assert torch.equal(keep, expected)
    assert torch.equal(dets[:, :4], boxes[expected])
    assert torch.equal(dets[:, 4], scores[expected])


def test_batched_nms_split_path_equals_torchvision(stand_in: types.ModuleType) -> None:
    """Above ``split_thr`` mmcv runs NMS per class, one stand-in call each."""
    from mmcv.ops import batched_nms

    g = torch.Generator().manual_seed(5)
    boxes, scores = _random_boxes(120, g), torch.rand(120, generator=g)
    labels = torch.randint(0, 3, (120,), generator=g)
    _, keep = batched_nms(boxes, scores, labels, {"iou_threshold": 0.4, "split_thr": 10})
    assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, labels, 0.4))


def _rois(
    n: int, batch: int, canvas: tuple[int, int], g: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """``(n, 5)`` RoIs (batch index, x1, y1, x2, y2) in image pixels, some smaller than one feature cell."""
    h, w = canvas
    x1 = torch.rand(n, generator=g) * w * 0.7
    y1 = torch.rand(n, generator=g) * h * 0.7
    x2 = x1 + torch.rand(n, generator=g) * w * 0.3 + 0.5
    y2 = y1 + torch.rand(n, generator=g) * h * 0.3 + 0.5
    index = torch.randint(0, batch, (n,), generator=g).float()
    return torch.stack([index, x1, y1, x2, y2], dim=1).to(dtype)


ROI_CASES = [
    # (spatial_scale, sampling_ratio, aligned, output_size)
    (1.0, 0, True, (7, 7)),
    (0.25, 2, True, (7, 7)),
    (0.125, 1, False, (5, 3)),
    (0.0625, 0, False, (7, 7)),
    (0.5, 4, True, (2, 4)),
]


@pytest.mark.parametrize(("scale", "ratio", "aligned", "size"), ROI_CASES)
@pytest.mark.parametrize("api", ["module", "function"])
def test_roi_align_forward_and_backward_equal_torchvision(
    stand_in: types.ModuleType,
    scale: float,
    ratio: int,
    aligned: bool,
    size: tuple[int, int],
    api: str,
) -> None:
    from mmcv.ops import RoIAlign, roi_align

    g = torch.Generator().manual_seed(int(scale * 1000) + ratio)
    feat_h, feat_w = 12, 10
    x = torch.randn(2, 3, feat_h, feat_w, generator=g)
    rois = _rois(16, 2, (int(feat_h / scale), int(feat_w / scale)), g, torch.float32)
    grad_out = torch.randn(16, 3, *size, generator=g)

    x_mm = x.clone().requires_grad_(True)
    if api == "module":
        out = RoIAlign(size, scale, ratio, "avg", aligned)(x_mm, rois)
    else:
        out = roi_align(x_mm, rois, size, scale, ratio, "avg", aligned)
    out.backward(grad_out)

    x_tv = x.clone().requires_grad_(True)
    ref = torchvision.ops.roi_align(x_tv, rois, size, scale, ratio, aligned)
    ref.backward(grad_out)

    assert out.shape == (16, 3, *size)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(x_mm.grad, x_tv.grad, rtol=1e-6, atol=1e-6)
    assert x_mm.grad.abs().sum() > 0


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_samples_at_mmcv_pixel_convention(stand_in: types.ModuleType, aligned: bool) -> None:
    """On a linear ramp the average of a bin's bilinear samples is the ramp at the bin centre.

    mmcv's ``aligned=True`` shifts the box by half a pixel (pixel centres at integer + 0.5);
    ``aligned=False`` is the legacy, unshifted grid. Independent of torchvision.
    """
    from mmcv.ops import roi_align

    width = 32
    ramp = torch.arange(width, dtype=torch.float64).expand(1, 1, 8, width).contiguous()
    x1, x2, bins = 6.0, 22.0, 4
    rois = torch.tensor([[0.0, x1, 2.0, x2, 5.0]], dtype=torch.float64)
    out = roi_align(ramp, rois, (1, bins), 1.0, 2, "avg", aligned)
    shift = 0.5 if aligned else 0.0
    centres = [x1 - shift + (j + 0.5) * (x2 - x1) / bins for j in range(bins)]
    torch.testing.assert_close(out.flatten(), torch.tensor(centres, dtype=torch.float64))


def test_roi_align_gradcheck_double(stand_in: types.ModuleType) -> None:
    from mmcv.ops import roi_align

    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = _rois(4, 2, (12, 14), g, torch.float64)
    for aligned in (True, False):
        assert torch.autograd.gradcheck(
            lambda inp, a=aligned: roi_align(inp, rois, (3, 2), 0.5, 2, "avg", a), (x,), eps=1e-6, atol=1e-6
        )


def _assert_install_hint(err: pytest.ExceptionInfo[NotImplementedError]) -> None:
    text = str(err.value)
    assert "\n" not in text
    assert "compiled mmcv" in text and "mmcv-lite" in text
    assert ext_fallback.COMPILED_HINT in text


def test_deform_conv_forward_says_what_to_install(stand_in: types.ModuleType) -> None:
    from mmcv.ops import DeformConv2d

    conv = DeformConv2d(4, 4, 3, padding=1)
    with pytest.raises(NotImplementedError, match="deform_conv_forward") as err:
        conv(torch.randn(1, 4, 8, 8), torch.zeros(1, 18, 8, 8))
    _assert_install_hint(err)


def test_roi_align_max_mode_says_what_to_install(stand_in: types.ModuleType) -> None:
    from mmcv.ops import roi_align

    rois = torch.tensor([[0.0, 1.0, 1.0, 5.0, 5.0]])
    with pytest.raises(NotImplementedError, match="pool_mode='max'") as err:
        roi_align(torch.randn(1, 2, 8, 8), rois, (2, 2), 1.0, 0, "max", True)
    _assert_install_hint(err)


def test_unknown_names_are_ops_that_raise_but_dunders_are_absent() -> None:
    module = ext_fallback.build_module()
    assert hasattr(module, "nms_rotated")  # mmcv's import-time hasattr checks pass
    with pytest.raises(NotImplementedError, match="'nms_rotated'"):
        module.nms_rotated(torch.zeros(1, 5), torch.zeros(1), 0.5)
    assert not hasattr(module, "__file__")
    assert getattr(module, ext_fallback.STAND_IN_FLAG) is True


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``mmcv._ext`` as ``module`` (a compiled ext that imports), or refuses it (``module=None``)."""

    def __init__(self, module: types.ModuleType | None) -> None:
        self.module = module

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec:
        if name != ext_fallback.MODULE_NAME:
            return None  # type: ignore[return-value]
        if self.module is None:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module  # type: ignore[return-value]

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@pytest.fixture
def no_ext_loaded(mmcv_ops: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``mmcv._ext`` not yet imported; the original entries come back after the test."""
    import mmcv

    monkeypatch.delitem(sys.modules, ext_fallback.MODULE_NAME, raising=False)
    monkeypatch.delattr(mmcv, "_ext", raising=False)
    yield


def test_compiled_ext_already_imported_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = types.ModuleType(ext_fallback.MODULE_NAME)
    monkeypatch.setitem(sys.modules, ext_fallback.MODULE_NAME, compiled)
    assert ext_fallback.install() is False
    assert sys.modules[ext_fallback.MODULE_NAME] is compiled


def test_compiled_ext_that_imports_is_left_alone(
    no_ext_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = types.ModuleType(ext_fallback.MODULE_NAME)
    monkeypatch.setattr(sys, "meta_path", [_Finder(compiled), *sys.meta_path])
    assert ext_fallback.install() is False
    assert sys.modules[ext_fallback.MODULE_NAME] is compiled
    assert not hasattr(compiled, ext_fallback.STAND_IN_FLAG)


def test_stand_in_installed_when_ext_does_not_import(
    no_ext_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmcv

    monkeypatch.setattr(sys, "meta_path", [_Finder(None), *sys.meta_path])
    assert ext_fallback.install() is True
    module = sys.modules[ext_fallback.MODULE_NAME]
    assert getattr(module, ext_fallback.STAND_IN_FLAG) is True
    assert mmcv._ext is module
    assert ext_fallback.install() is True  # idempotent: the stand-in stays
    assert sys.modules[ext_fallback.MODULE_NAME] is module

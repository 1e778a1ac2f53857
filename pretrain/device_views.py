"""The photometric half of the views, on the training device (``views.output: crops``).

With ``views.output: crops`` a loader worker does only what needs the CPU: it decodes each image, draws every
crop box and every photometric parameter from the sample's generator (the same draws, in the same order, as
the CPU views), resamples the crops to ``uint8`` and sends them with the draws (:meth:`ViewDraws.encode`,
``"draws"``) and the composite's paste places (``"paste"``). :func:`finish_views` then makes the views the
model reads, on whatever device the batch is on, for the whole batch at once: flip, ColorJitter (each
operation in its drawn order, clamped as torchvision's), grey, Gaussian blur, solarization, the small copy of
global view 1, the composite's pasting, and the normalisation. On a GPU that is a few dozen batched kernels a
step, where the worker's CPU would spend about half of each sample's time.

The result equals the CPU views of ``views.output: float32`` (same draws, same crops) to within float32
rounding (``tests/pretrain/test_device_views.py``): the CPU views compose the colour operations between two
clamps into one map (:class:`~saip_bench.pretrain.image_ops.ColourMap`), this applies them one by one and
clamps after each (a clamp of pixels in range changes nothing, so the two agree); the hue turn is the same
rotation about the grey axis (image_ops.py), the blur the same kernel. Nothing is rounded to ``uint8`` after
the crop, as with ``views.output: float32``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from saip_bench.pretrain.image_ops import GRAY_WEIGHTS, normalize

__all__ = ["augment_tensor", "finish_views", "is_crops_batch"]


def is_crops_batch(batch: dict) -> bool:
    """Whether ``batch`` holds ``views.output: crops`` crops and draws, not finished views."""
    return isinstance(batch.get("draws"), torch.Tensor)


def _hue_matrices(shift: torch.Tensor) -> torch.Tensor:
    """``(V, 3, 3)`` rotations about the grey axis by ``shift`` of a turn (:func:`image_ops.hue_rotation`)."""
    theta = 2.0 * math.pi * shift
    cos, sin = torch.cos(theta), torch.sin(theta)
    a, b, r = (1.0 + 2.0 * cos) / 3.0, (1.0 - cos) / 3.0, sin / math.sqrt(3.0)
    rows = [torch.stack(row, dim=-1) for row in ((a, b - r, b + r), (b + r, a, b - r), (b - r, b + r, a))]
    return torch.stack(rows, dim=-2)


def _blur(x: torch.Tensor, sigma: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Each view blurred at its own ``sigma`` (0: unchanged), as :func:`image_ops.gaussian_blur`: the kernel
    over +-max(1, ceil(3 sigma)) pixels, normalised, the border replicated; two depthwise convolutions."""
    v, c, h, w = x.shape
    radius = max(1, math.ceil(3.0 * sigma_max))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float64)
    s = sigma.to(torch.float64).clamp(min=1e-6)[:, None]
    reach = torch.ceil(3.0 * s).clamp(min=1.0)
    kernel = torch.exp(-0.5 * (t / s) ** 2) * (t.abs() <= reach)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    delta = (t == 0).to(torch.float64).expand_as(kernel)
    kernel = torch.where((sigma > 0)[:, None], kernel, delta).to(x.dtype)  # (V, K)
    weight = kernel.repeat_interleave(c, dim=0)  # one kernel per channel of each view
    planes = x.reshape(1, v * c, h, w)
    planes = F.conv2d(
        F.pad(planes, (0, 0, radius, radius), mode="replicate"), weight[:, None, :, None], groups=v * c
    )
    planes = F.conv2d(
        F.pad(planes, (radius, radius, 0, 0), mode="replicate"), weight[:, None, None, :], groups=v * c
    )
    return planes.view(v, c, h, w)


def augment_tensor(x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Apply encoded draws (``(V, DRAW_FIELDS)``, :meth:`ViewDraws.encode`) to ``(V, 3, H, W)`` float
    images on the 0-255 scale, every view at once; returns the augmented images (same scale, not rounded).

    The operations of :meth:`PhotometricAugment.apply`, in its order: flip; the four ColorJitter slots, each
    a per-view 3x3 colour matrix and offset (brightness ``f I``, contrast ``f I`` plus ``(1 - f)`` times the
    mean grey level, saturation ``f I + (1 - f) 1 g^T``, the hue rotation, or the identity), clamped to
    0-255 as torchvision's; grey; the blur; solarization at 128.
    """
    v = x.shape[0]
    d = draws.to(device=x.device, dtype=torch.float32)
    grey_w = torch.tensor(GRAY_WEIGHTS, device=x.device)
    eye = torch.eye(3, device=x.device).expand(v, 3, 3)
    x = torch.where((d[:, 0] > 0.5).view(v, 1, 1, 1), x.flip(-1), x)
    for k in range(4):  # every slot for every view (the identity where it has none): no host sync
        op, f = d[:, 1 + 2 * k].round(), d[:, 2 + 2 * k]
        scaled = f.view(v, 1, 1) * eye
        saturated = scaled + (1.0 - f).view(v, 1, 1) * grey_w.expand(v, 3, 3)
        matrix = torch.where(
            (op <= 1).view(v, 1, 1) & (op >= 0).view(v, 1, 1),
            scaled,
            torch.where(
                (op == 2).view(v, 1, 1),
                saturated,
                torch.where((op == 3).view(v, 1, 1), _hue_matrices(f), eye),
            ),
        )
        grey_mean = x.mean(dim=(-2, -1)) @ grey_w  # (V,): the contrast's blend target
        offset = torch.where(op == 1, (1.0 - f) * grey_mean, torch.zeros_like(f))
        x = torch.baddbmm(offset.view(v, 1, 1), matrix, x.reshape(v, 3, -1)).view(x.shape).clamp_(0.0, 255.0)
    grey = (d[:, 9] > 0.5).view(v, 1, 1, 1)
    x = torch.where(grey, (grey_w.view(1, 3, 1, 1) * x).sum(dim=1, keepdim=True).expand_as(x), x)
    sigma = d[:, 10]
    sigma_max = float(sigma.max())  # the kernel's width: the one host sync
    if sigma_max > 0:
        x = _blur(x, sigma, sigma_max)
    solar = (d[:, 11] > 0.5).view(v, 1, 1, 1)
    return torch.where(solar & (x >= 128.0), 255.0 - x, x)


def _paste(canvas: torch.Tensor, locals_: torch.Tensor, paste: torch.Tensor) -> torch.Tensor:
    """Blend each sample's persons into its ``(B, 3, H, W)`` canvas, in place: person p is local view
    ``L - 1 - p`` (INSTANCE, then REGION), at ``paste[b, p] = (top, left, weight)``; one gather and one
    scatter of all samples a person (the places do not overlap). Returns the ``(B, P, H, W)`` float paste
    masks, 1 where person p went."""
    b = canvas.shape[0]
    n_local = locals_.shape[0] // b
    ph, pw = locals_.shape[-2:]
    hwc = canvas.permute(0, 2, 3, 1)  # a view: writing through it writes the canvas
    samples = torch.arange(b, device=canvas.device).view(b, 1, 1)
    dy = torch.arange(ph, device=canvas.device).view(1, ph, 1)
    dx = torch.arange(pw, device=canvas.device).view(1, 1, pw)
    masks = canvas.new_zeros((b, paste.shape[1], *canvas.shape[-2:]))
    for p in range(paste.shape[1]):
        rows = paste[:, p, 0].long().view(b, 1, 1) + dy
        cols = paste[:, p, 1].long().view(b, 1, 1) + dx
        weight = paste[:, p, 2].to(canvas.dtype).view(b, 1, 1, 1)
        person = locals_[(n_local - 1 - p) * b : (n_local - p) * b].permute(0, 2, 3, 1)
        region = hwc[samples, rows, cols]  # (B, ph, pw, 3)
        hwc[samples, rows, cols] = region * (1.0 - weight) + person * weight
        masks[:, p][samples, rows, cols] = 1.0
    return masks


@torch.no_grad()
def finish_views(
    batch: dict[str, torch.Tensor], mean: tuple[float, ...], std: tuple[float, ...]
) -> dict[str, torch.Tensor]:
    """The views the model reads from a ``crops`` batch, made on the batch's device.

    ``globals`` / ``locals`` / ``composite`` hold the ``uint8`` crops (view-major, the small copy's rows of
    ``locals`` empty), ``draws`` ``(B, V, DRAW_FIELDS)`` each sample's draws (its global views, its local
    views but the last, its background), ``paste`` ``(B, P, 3)`` each pasted person's top, left and blend
    weight. Returns ``globals``, ``locals`` (the last view global view 1, area-downsampled), ``composite``
    normalised with ``mean`` and ``std``, and with a composite its float paste masks ``masks``, made here
    from the places; other keys as they are.
    """
    with torch.autocast(batch["globals"].device.type, enabled=False):
        draws = batch["draws"]
        b, fields = draws.shape[0], draws.shape[-1]
        out = {k: t for k, t in batch.items() if k not in ("draws", "paste")}
        g = batch["globals"]
        n_global = g.shape[0] // b

        def view_major(first: int, n: int) -> torch.Tensor:
            return draws[:, first : first + n].transpose(0, 1).reshape(n * b, fields)

        globals_ = augment_tensor(g.float(), view_major(0, n_global))
        out["globals"] = normalize(globals_, mean, std)
        locals_ = None
        if "locals" in batch and batch["locals"].shape[0] == 0:
            out["locals"] = batch["locals"].float()  # none (MAE): empty, as float as the views
        elif "locals" in batch:
            crops = batch["locals"]
            n_local = crops.shape[0] // b
            size = tuple(crops.shape[-2:])
            parts = []
            if n_local > 1:
                parts.append(
                    augment_tensor(crops[: (n_local - 1) * b].float(), view_major(n_global, n_local - 1))
                )
            small = F.interpolate(globals_[:b], size=size, mode="area")  # the small copy of global view 1
            parts.append(small)
            locals_ = torch.cat(parts)
            out["locals"] = normalize(locals_, mean, std)
        if "composite" in batch:
            if locals_ is None:
                raise ValueError("a crops batch with a composite needs its local views (the pasted persons)")
            canvas = augment_tensor(batch["composite"].float(), draws[:, -1])
            out["masks"] = _paste(canvas, locals_, batch["paste"])
            out["composite"] = normalize(canvas, mean, std)
        return out

"""`SynthWorld`: seeded identities, cameras, person crops and multi-person scenes with all ground truth."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from PIL import Image

from saip_bench.synth.attributes import identity_attributes, sample_appearance, view_attributes, view_of
from saip_bench.synth.background import apply_camera, camera_style, render_background
from saip_bench.synth.caption import describe
from saip_bench.synth.painter import PART_LUT, Painter, apply_patterns, shade_people
from saip_bench.synth.person import draw_person
from saip_bench.synth.scene import compose_scene
from saip_bench.synth.skeleton import clip_keypoints, keypoint_visibility
from saip_bench.synth.types import Identity, PersonSample, SceneSample

_BASE_YAWS = (0.0, 90.0, 180.0, 270.0)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """xywh of the True pixels of ``mask`` (all zeros when empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class SynthWorld:
    """A seeded population of people and cameras.

    Everything is a pure function of the world seed and the arguments: an identity's appearance depends on
    ``(seed, pid)`` only, a camera's look on ``(seed, camid)``, and a rendered image additionally on the
    ``rng`` passed in, so the same seeds give identical pixels whatever was rendered before.

    Args:
        seed: World seed.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._setup()

    def _setup(self) -> None:
        self._identities: _Lru = _Lru(4096)
        self._cameras: _Lru = _Lru(256)
        self._backgrounds: _Lru = _Lru(64)
        self._noise = self._rng(9).standard_normal((512, 512, 3), dtype=np.float32)

    def __getstate__(self) -> dict:
        # Caches and the noise field are derived from the seed: ship only the seed to loader workers.
        return {"seed": self.seed}

    def __setstate__(self, state: dict) -> None:
        self.seed = state["seed"]
        self._setup()

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**63, *(int(k) % 2**63 for k in key)])

    def identity(self, pid: int) -> Identity:
        """The person ``pid``: appearance and (view-independent) attributes, fixed by ``(seed, pid)``."""
        pid = int(pid)
        if pid not in self._identities:
            app = sample_appearance(self._rng(1, pid))
            self._identities.put(pid, Identity(pid, identity_attributes(app), app))
        return self._identities[pid]

    def camera(self, camid: int) -> dict:
        """Camera ``camid``'s style (background kind and palette, colour cast, sharpness, framing)."""
        camid = int(camid)
        if camid not in self._cameras:
            self._cameras.put(camid, camera_style(self._rng(2, camid)))
        return self._cameras[camid]

    def _background(self, camid: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        h, w = size
        key = (camid, h, w)
        if key not in self._backgrounds:
            bg_rng = self._rng(3, camid, h, w)
            big = (int(h * 1.25) + 1, int(w * 1.25) + 1)
            self._backgrounds.put(key, [render_background(bg_rng, big, self.camera(camid)) for _ in range(3)])
        bank = self._backgrounds[key]
        big = bank[int(rng.integers(len(bank)))]
        y0, x0 = int(rng.integers(0, big.shape[0] - h + 1)), int(rng.integers(0, big.shape[1] - w + 1))
        return big[y0 : y0 + h, x0 : x0 + w]

    def noise_field(self, size: tuple[int, int]) -> np.ndarray:
        """Unit-variance sensor noise at least ``size`` large (tiled beyond 512 pixels)."""
        h, w = size
        if h <= self._noise.shape[0] and w <= self._noise.shape[1]:
            return self._noise
        reps = (math.ceil(h / self._noise.shape[0]), math.ceil(w / self._noise.shape[1]), 1)
        return np.tile(self._noise, reps)

    def render_person(
        self,
        identity: Identity,
        camid: int,
        *,
        size: tuple[int, int] = (256, 128),
        rng: np.random.Generator | None = None,
    ) -> PersonSample:
        """Render ``identity`` as seen by camera ``camid`` in a ``size`` = (H, W) crop.

        The camera fixes the background family, colour cast and sharpness; the (pid, camera) pair fixes the
        usual viewpoint; ``rng`` draws the walking phase and gait (some people stand), the viewpoint jitter,
        framing and lighting.
        """
        rng = rng if rng is not None else self._rng(4, identity.pid, camid)
        h, w = int(size[0]), int(size[1])
        style = self.camera(camid)
        app = identity.appearance
        base = _BASE_YAWS[int(self._rng(5, identity.pid, camid).integers(4))]
        if rng.random() < 0.25:
            base = _BASE_YAWS[int(rng.integers(4))]
        yaw = base + float(rng.uniform(-22.0, 22.0))
        bg = self._background(camid, (h, w), rng)
        rgb = Image.fromarray(bg)  # a copy: the cached bank stays clean
        code = Image.new("I", (w, h), 0)
        body_h = h * app["body"]["height"] * float(rng.uniform(0.84, 0.92)) * style["scale"]
        body_h = min(body_h, 0.97 * h)
        top = (h - body_h) * float(rng.uniform(0.3, 0.75))
        cx = w / 2 + float(rng.uniform(-0.06, 0.06)) * w
        geo = draw_person(
            Painter(rgb, code),
            app,
            yaw=yaw,
            phase=float(rng.uniform(0, 2 * math.pi)),
            gait=0.2 if rng.random() < 0.15 else float(rng.uniform(0.6, 1.2)),
            cx=cx,
            top=top,
            scale=body_h,
        )
        img = np.array(rgb)
        codes = np.asarray(code)
        apply_patterns(img, codes, geo["patterns"])
        shade_people(img, codes, float(rng.uniform(-0.5, 0.5)), cx)
        img = apply_camera(img, style, rng, self.noise_field((h, w)))
        part = PART_LUT[codes & 0xFF]
        groups = ((codes >> 8) & 0xFF).astype(np.intp)
        kps = keypoint_visibility(geo["keypoints"], groups)
        clip_keypoints(kps, w, h)
        view = view_of(yaw)
        attributes = {**identity.attributes, **view_attributes(view)}
        return PersonSample(
            image=img,
            pid=identity.pid,
            camid=int(camid),
            attributes=attributes,
            caption=describe(app, rng),
            keypoints17=kps[:17].copy(),
            keypoints133=kps,
            part_mask=part,
            bbox=mask_box(codes != 0),
        )

    def render_scene(
        self,
        n_persons: int,
        *,
        size: tuple[int, int] = (384, 512),
        rng: np.random.Generator | None = None,
    ) -> SceneSample:
        """A street or indoor scene of ``n_persons`` people at varied scales, overlapping one another.

        Persons entirely hidden by others are dropped, so ``len(sample.persons)`` can be below
        ``n_persons``. Crowd blobs and reflections are drawn unlabelled and returned as ``ignore_boxes``.
        """
        rng = rng if rng is not None else self._rng(6, n_persons)
        return compose_scene(self, int(n_persons), (int(size[0]), int(size[1])), rng)

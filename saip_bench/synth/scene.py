"""Multi-person scenes: people on a ground plane, drawn far to near so nearer people occlude farther ones."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from saip_bench.synth.attributes import view_attributes, view_of
from saip_bench.synth.background import apply_camera, camera_style, render_background
from saip_bench.synth.painter import PART_LUT, Painter, apply_patterns, shade_people
from saip_bench.synth.person import draw_person
from saip_bench.synth.skeleton import clip_keypoints, keypoint_visibility
from saip_bench.synth.types import ScenePerson, SceneSample

if TYPE_CHECKING:
    from saip_bench.synth.world import SynthWorld


def _crowd_blob(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[float, float, float, float]
) -> None:
    """Many tiny people packed together: too small and too dense to label one by one."""
    x, y, w, h = box
    for _ in range(int(rng.integers(12, 40))):
        px, ph = x + rng.uniform(0, w), h * rng.uniform(0.45, 0.8)
        py = y + h - ph * rng.uniform(0.0, 0.4)
        col = tuple(int(c) for c in rng.integers(20, 220, size=3))
        draw.rectangle((px - ph * 0.12, py - ph * 0.8, px + ph * 0.12, py), fill=col)
        draw.ellipse((px - ph * 0.08, py - ph, px + ph * 0.08, py - ph * 0.8), fill=(190, 150, 120))


def _reflection(img: Image.Image, rng: np.random.Generator, box: tuple[float, float, float, float]) -> None:
    """A faint mirrored figure in a window pane."""
    x, y, w, h = (int(v) for v in box)
    pane = img.crop((x, y, x + w, y + h))
    ghost = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(120, 230, size=3)))
    draw = ImageDraw.Draw(ghost)
    col = tuple(int(c) for c in rng.integers(20, 200, size=3))
    draw.ellipse((w * 0.38, h * 0.05, w * 0.62, h * 0.22), fill=(170, 140, 120))
    draw.rectangle((w * 0.3, h * 0.22, w * 0.7, h * 0.6), fill=col)
    draw.rectangle((w * 0.33, h * 0.6, w * 0.67, h * 0.95), fill=tuple(c // 2 for c in col))
    img.paste(Image.blend(pane, ghost, 0.35), (x, y))


def compose_scene(
    world: SynthWorld, n_persons: int, size: tuple[int, int], rng: np.random.Generator
) -> SceneSample:
    """Render a scene; see :meth:`SynthWorld.render_scene`."""
    h, w = size
    style = camera_style(rng)
    style["kind"] = ("street", "indoor", "texture")[int(rng.integers(3))]
    canvas = Image.fromarray(render_background(rng, (h, w), style))
    horizon = h * float(rng.uniform(0.2, 0.4))
    ignore: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(0, 3))):
        bw, bh = w * float(rng.uniform(0.12, 0.3)), h * float(rng.uniform(0.05, 0.12))
        box = (float(rng.uniform(0, w - bw)), float(max(0.0, horizon - bh * rng.uniform(0.2, 0.9))), bw, bh)
        if rng.random() < 0.6:
            _crowd_blob(ImageDraw.Draw(canvas), rng, box)
        else:
            box = (box[0], box[1], box[2] * 0.5 + 4, box[3] * 2 + 4)
            box = (box[0], box[1], min(box[2], w - box[0]), min(box[3], h - box[1]))
            _reflection(canvas, rng, box)
        ignore.append(tuple(float(v) for v in box))

    # Place feet on the ground plane: the lower the feet, the larger the person.
    plans = []
    for _ in range(n_persons):
        pid = int(rng.integers(1, 1 << 30))
        ident = world.identity(pid)
        foot = float(rng.uniform(horizon + 0.08 * h, h * 1.12))
        body_h = (
            min((foot - horizon) * float(rng.uniform(1.2, 1.8)), 0.95 * h)
            * ident.appearance["body"]["height"]
        )
        if plans and rng.random() < 0.5:  # next to someone already placed, to make occlusion common
            other = plans[int(rng.integers(len(plans)))]
            cx = other["cx"] + float(rng.uniform(-0.35, 0.35)) * max(body_h, other["body_h"])
        else:
            cx = float(rng.uniform(-0.05, 1.05)) * w
        yaw = float(rng.uniform(0, 360))
        plans.append(
            {
                "ident": ident,
                "foot": foot,
                "body_h": body_h,
                "cx": cx,
                "yaw": yaw,
                "phase": float(rng.uniform(0, 2 * math.pi)),
                "gait": 0.2 if rng.random() < 0.3 else float(rng.uniform(0.6, 1.2)),
            }
        )
    plans.sort(key=lambda p: p["foot"])

    code = Image.new("I", (w, h), 0)
    drawn = []
    for i, plan in enumerate(plans):
        s = plan["body_h"]
        x0, y0 = int(plan["cx"] - 0.8 * s) - 2, int(plan["foot"] - 1.3 * s) - 2
        # The unoccluded silhouette, in a canvas with room for strides, brims and held things.
        sil = Image.new("L", (int(1.6 * s) + 5, int(1.45 * s) + 5), 0)
        painter = Painter(canvas, code, inst=i + 1, silhouette=(sil, (-x0, -y0)))
        geo = draw_person(
            painter,
            plan["ident"].appearance,
            yaw=plan["yaw"],
            phase=plan["phase"],
            gait=plan["gait"],
            cx=plan["cx"],
            top=plan["foot"] - s,
            scale=s,
            inst=i + 1,
        )
        drawn.append((plan, geo, np.asarray(sil) > 0, (x0, y0)))

    img = np.array(canvas)
    codes = np.asarray(code)
    apply_patterns(img, codes, [p for _, geo, _, _ in drawn for p in geo["patterns"]])
    shade_people(img, codes, float(rng.uniform(-0.4, 0.4)))
    img = apply_camera(img, style, rng, world.noise_field((h, w)))
    inst = (codes >> 16).astype(np.int32)
    groups = ((codes >> 8) & 0xFF).astype(np.intp)
    part = PART_LUT[codes & 0xFF]

    persons: list[ScenePerson] = []
    remap = np.zeros(len(drawn) + 1, dtype=np.int32)
    for i, (plan, geo, sil, (x0, y0)) in enumerate(drawn):
        mask = inst == i + 1
        visible = int(mask.sum())
        if visible == 0:
            continue  # hidden behind nearer people: nothing to learn from
        rows, cols = np.flatnonzero(sil.any(axis=1)), np.flatnonzero(sil.any(axis=0))
        full_box = (
            float(cols[0] + x0),
            float(rows[0] + y0),
            float(cols[-1] - cols[0] + 1),
            float(rows[-1] - rows[0] + 1),
        )
        kps = geo["keypoints"]
        on = np.flatnonzero(kps[:, 2] > 0)
        xi = np.clip(kps[on, 0].astype(np.int64), 0, w - 1)
        yi = np.clip(kps[on, 1].astype(np.int64), 0, h - 1)
        other = (inst[yi, xi] != 0) & (inst[yi, xi] != i + 1)
        keypoint_visibility(kps, groups)
        kps[on[other], 2] = np.minimum(kps[on[other], 2], 1)
        clip_keypoints(kps, w, h)
        remap[i + 1] = len(persons) + 1
        ys, xs = np.nonzero(mask)
        ident = plan["ident"]
        persons.append(
            ScenePerson(
                pid=ident.pid,
                full_box=full_box,
                visible_box=(
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1),
                ),
                head_box=geo["head_box"],
                keypoints17=kps[:17].copy(),
                keypoints133=kps,
                instance_mask=mask,
                occlusion=float(np.clip(1.0 - visible / max(int(sil.sum()), 1), 0.0, 1.0)),
                attributes={**ident.attributes, **view_attributes(view_of(plan["yaw"]))},
            )
        )
    return SceneSample(
        image=img, persons=persons, part_mask=part, instance_ids=remap[inst], ignore_boxes=ignore
    )

"""Drawing one person (body, clothes, accessories) and computing their keypoints.

Body parts are drawn back to front by their depth towards the camera, so a side view puts the far arm
behind the torso and the near one over it; the same calls draw the part mask (see :class:`Painter`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from saip_bench.synth import painter as P
from saip_bench.synth.accessories import carried_elements, head_elements, shade
from saip_bench.synth.garments import garment_elements
from saip_bench.synth.skeleton import (
    BODY17_IDX,
    FEET6_IDX,
    G_LIMB,
    J,
    body_joints,
    hand_points,
    project,
)


def _lerp(a, b, t: float) -> np.ndarray:
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


def draw_person(
    pt: P.Painter,
    app: dict,
    *,
    yaw: float,
    phase: float,
    cx: float,
    top: float,
    scale: float,
    inst: int = 1,
    gait: float = 1.0,
) -> dict:
    """Draw the person ``app`` and return their geometry.

    Args:
        pt: Painter for the target image(s).
        app: Appearance dict (from :func:`saip_bench.synth.attributes.sample_appearance`).
        yaw: Viewing angle in degrees (0 front, 90 facing image-right, 180 back).
        phase: Walking phase in radians.
        cx, top, scale: Pixel x of the body axis, y of the top of the head, body height in pixels.
        inst: Instance id the patterns are restricted to.
        gait: Stride and arm-swing scale (0 stands still).

    Returns:
        ``keypoints`` (133, 3) float32 before occlusion tests (v = 0 for face points turned away),
        ``patterns`` for :func:`apply_patterns`, ``head_box`` xywh.
    """
    S = scale
    carry = {b["side"][0]: b["type"] for b in app["bags"] if b["type"] in ("handbag", "plastic")}
    j3, sz = body_joints(app, phase, hold_front=app["hold"] is not None, carry=carry, gait=gait)
    xy, dep = project(j3, yaw, cx, top, S)
    t = math.radians(yaw)
    cos_t, sin_t = math.cos(t), math.sin(t)
    build, k = sz["build"], sz["k"]
    up, low, coat, skin = app["upper"], app["lower"], app["coat"], app["skin"]
    patterns: list[dict] = []

    def hw(wx: float, dz: float) -> float:  # projected half-width of a body slab
        return math.hypot(wx * cos_t, dz * sin_t) * S

    # Garment codes and colours.
    up_rgb = up["colour"]["rgb"]
    if up["type"] == "dress":
        up_code = P.DRESS
    elif up["type"] in ("jacket", "suit"):
        up_code = P.COAT
    elif up["pattern"] != "plain":
        up_code = P.C_UPPER_PAT
    else:
        up_code = P.UPPER
    sleeve_rgb, sleeve_code, long_sleeve = up_rgb, up_code, up["sleeve"] == "long"
    if coat is not None:
        sleeve_rgb, sleeve_code, long_sleeve = coat["colour"]["rgb"], P.COAT, True
    low_rgb, ltype = low["colour"]["rgb"], low["type"]
    pants_code = P.C_LOWER_PAT if low["pattern"] == "pattern" and ltype in ("trousers", "shorts") else P.PANTS
    glove_rgb = app["gloves"]["rgb"] if app["gloves"] else None
    shoe, shoe_rgb = app["shoes"]["type"], app["shoes"]["colour"]["rgb"]
    sho_c, hip_c = (xy[J["l_sho"]] + xy[J["r_sho"]]) / 2, xy[J["pelvis"]]
    w_sho = hw(abs(j3[J["l_sho"], 0]) + 0.02, 0.065 * build)
    w_hip = hw(app["body"]["hip"] + 0.035 * build, 0.06 * build)
    y_neck = sho_c[1] - 0.02 * S
    hem_y = hip_c[1] + 0.03 * S
    elements: list[tuple[float, object]] = []

    v = SimpleNamespace(
        pt=pt,
        app=app,
        j3=j3,
        xy=xy,
        dep=dep,
        S=S,
        yaw=yaw,
        cx=cx,
        top=top,
        hw=hw,
        cos_t=cos_t,
        sin_t=sin_t,
        sz=sz,
        sho_c=sho_c,
        hip_c=hip_c,
        w_sho=w_sho,
        w_hip=w_hip,
        y_neck=y_neck,
        hem_y=hem_y,
        up_rgb=up_rgb,
        up_code=up_code,
        low_rgb=low_rgb,
        ltype=ltype,
        pants_code=pants_code,
        inst=inst,
        patterns=patterns,
    )
    elements += garment_elements(v)

    # ---- limbs
    for side, sign in (("l", 1.0), ("r", -1.0)):
        arm_code, leg_code = (P.L_ARM, P.L_LEG) if side == "l" else (P.R_ARM, P.R_LEG)
        shoe_code = P.L_SHOE if side == "l" else P.R_SHOE
        sho, elb, wri = xy[J[f"{side}_sho"]], xy[J[f"{side}_elb"]], xy[J[f"{side}_wri"]]
        hip, knee, ank = xy[J[f"{side}_hip"]], xy[J[f"{side}_knee"]], xy[J[f"{side}_ank"]]
        toe, heel = xy[J[f"{side}_toe"]], xy[J[f"{side}_heel"]]
        dim = 0.85 if (dep[J[f"{side}_sho"]] < -0.02) else 1.0  # the far side in shadow

        def uarm(sho=sho, elb=elb, arm_code=arm_code, side=side, dim=dim) -> None:
            w = 0.055 * build * S
            pt.limb(sho, elb, w, shade(skin, dim), arm_code, G_LIMB[(side, "uarm")])
            end = elb if long_sleeve else _lerp(sho, elb, 0.55)
            pt.limb(sho, end, w + 0.014 * S, shade(sleeve_rgb, dim), sleeve_code, G_LIMB[(side, "uarm")])

        def farm(elb=elb, wri=wri, arm_code=arm_code, side=side, dim=dim) -> None:
            w = 0.045 * build * S
            pt.limb(elb, wri, w, shade(skin, dim), arm_code, G_LIMB[(side, "farm")])
            if long_sleeve:
                pt.limb(elb, wri, w + 0.012 * S, shade(sleeve_rgb, dim), sleeve_code, G_LIMB[(side, "farm")])

        hand_pts, outline = hand_points(
            wri, elb, 0.085 * k * S, sin_t if abs(sin_t) > 0.5 else (cx - wri[0]) * np.sign(cos_t) + 1e-6
        )

        def hand(outline=outline, arm_code=arm_code, side=side, dim=dim) -> None:
            rgb, code = (glove_rgb, P.GLOVE) if glove_rgb else (skin, arm_code)
            pt.polygon(outline, shade(rgb, dim), code, G_LIMB[(side, "hand")])

        def thigh(hip=hip, knee=knee, leg_code=leg_code, side=side, sign=sign, dim=dim) -> None:
            w = 0.075 * build * S
            pt.limb(hip, knee, w, shade(skin, dim), leg_code, G_LIMB[(side, "thigh")])
            if ltype in ("trousers", "jeans", "shorts"):
                end = knee if ltype != "shorts" else _lerp(hip, knee, 0.6)
                pt.limb(hip, end, w + 0.012 * S, shade(low_rgb, dim), pants_code, G_LIMB[(side, "thigh")])
                _seams(hip, end, w, sign, dim, G_LIMB[(side, "thigh")])

        def shin(
            knee=knee, ank=ank, leg_code=leg_code, shoe_code=shoe_code, side=side, sign=sign, dim=dim
        ) -> None:
            w = 0.055 * build * S
            g = G_LIMB[(side, "shin")]
            pt.limb(knee, ank, w, shade(skin, dim), leg_code, g)
            if ltype in ("trousers", "jeans"):
                pt.limb(knee, ank, w + 0.014 * S, shade(low_rgb, dim), pants_code, g)
                _seams(knee, ank, w, sign, dim, g)
            elif app["socks"] is not None:
                pt.limb(_lerp(knee, ank, 0.75), ank, w + 0.004 * S, app["socks"]["colour"]["rgb"], P.SOCKS, g)
            if shoe == "boots":
                pt.limb(_lerp(knee, ank, 0.55), ank, w + 0.02 * S, shade(shoe_rgb, dim), shoe_code, g)

        def foot(
            ank=ank, toe=toe, heel=heel, leg_code=leg_code, shoe_code=shoe_code, side=side, dim=dim
        ) -> None:
            g, w = G_LIMB[(side, "foot")], 0.045 * S
            sole_l, sole_r = (heel[0], heel[1]), (toe[0], toe[1])
            if shoe == "sandals":
                pt.limb(sole_l, sole_r, w, shade(skin, dim), leg_code, g)
                pt.line([(ank[0], ank[1]), sole_r], 0.012 * S, shoe_rgb, shoe_code, g)
                pt.line([sole_l, sole_r], 0.012 * S, shade(shoe_rgb, 0.7), shoe_code, g)
                return
            pt.limb(sole_l, sole_r, w, shade(shoe_rgb, dim), shoe_code, g)
            pt.limb(_lerp(ank, heel, 0.3), _lerp(ank, toe, 0.5), w * 0.9, shade(shoe_rgb, dim), shoe_code, g)
            if shoe == "sneakers":
                sole = (235, 235, 235) if sum(shoe_rgb) < 450 else (60, 60, 60)
                pt.line(
                    [(sole_l[0], sole_l[1] + 0.3 * w), (sole_r[0], sole_r[1] + 0.3 * w)],
                    0.014 * S,
                    sole,
                    shoe_code,
                    g,
                )
            elif shoe == "leather":
                pt.ellipse(*_lerp(ank, toe, 0.7), 0.008 * S, 0.005 * S, (235, 225, 215), shoe_code, g)

        bias = 0.03
        d = dep
        elements += [
            ((d[J[f"{side}_sho"]] + d[J[f"{side}_elb"]]) / 2 + bias, uarm),
            ((d[J[f"{side}_elb"]] + d[J[f"{side}_wri"]]) / 2 + bias + 0.001, farm),
            (d[J[f"{side}_wri"]] + bias + 0.002, hand),
            ((d[J[f"{side}_hip"]] + d[J[f"{side}_knee"]]) / 2, thigh),
            ((d[J[f"{side}_knee"]] + d[J[f"{side}_ank"]]) / 2 + 0.001, shin),
            ((d[J[f"{side}_ank"]] + d[J[f"{side}_toe"]]) / 2 + 0.002, foot),
        ]
        if side == "l":
            left_hand = hand_pts
        else:
            right_hand = hand_pts

    def _seams(a, b, w, sign, dim, g) -> None:
        if ltype == "jeans":
            pt.line([tuple(a), tuple(b)], 0.006 * S, shade(low_rgb, 1.35 * dim), pants_code, g)
        if low["pattern"] == "stripe":
            n = np.array((-(b[1] - a[1]), b[0] - a[0]))
            n = n / (np.hypot(*n) + 1e-9)
            if n[0] * sign * (cos_t if abs(cos_t) > 0.3 else 1.0) < 0:
                n = -n
            off = n * (w / 2 + 0.002 * S)
            pt.line([tuple(a + off), tuple(b + off)], 0.012 * S, low["colour2"]["rgb"], pants_code, g)

    if low["pattern"] == "pattern":
        code = P.C_SKIRT_PAT if ltype == "skirt" else P.C_LOWER_PAT
        patterns.append(
            {
                "code": code,
                "kind": "dots",
                "colour": low["colour2"]["rgb"],
                "period": 0.04 * S,
                "origin": (float(hip_c[0]), float(hip_c[1])),
                "inst": inst,
            }
        )

    # ---- carried things and the head
    elements += carried_elements(v)
    head_els, head = head_elements(v)
    elements += head_els
    face_xy, face_vis = head["face_xy"], head["face_vis"]

    elements.sort(key=lambda e: e[0])
    for _, fn in elements:
        fn()

    # ---- keypoints (133, COCO-WholeBody order) before occlusion tests
    kps = np.zeros((133, 3), dtype=np.float32)
    kps[:17, :2] = xy[BODY17_IDX]
    kps[:17, 2] = 2
    # Points on the head turned away from the camera are not labelled (COCO annotators skip them).
    normals = {0: (0.0, 1.0), 1: (0.45, 0.89), 2: (-0.45, 0.89), 3: (1.0, -0.05), 4: (-1.0, -0.05)}
    for i, (nx, nz) in normals.items():
        thr = -0.35 if i >= 3 else (0.0 if i > 0 else -0.2)
        if nz * cos_t - nx * sin_t <= thr:
            kps[i, 2] = 0
    kps[17:23, :2] = xy[FEET6_IDX]
    kps[17:23, 2] = 2
    kps[23:91, :2] = face_xy
    kps[23:91, 2] = np.where(face_vis & (cos_t > -0.35), 2, 0)
    kps[91:112, :2] = left_hand
    kps[112:133, :2] = right_hand
    kps[91:, 2] = 2
    return {"keypoints": kps, "patterns": patterns, "head_box": head["head_box"]}

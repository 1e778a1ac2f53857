"""Garments on the torso and hips: shirts, jackets, suits, coats, dresses, skirts, and what hangs on them.

:func:`garment_elements` returns ``(depth, draw)`` elements that
:func:`saip_bench.synth.person.draw_person` sorts together with the limbs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from saip_bench.synth import painter as P
from saip_bench.synth.accessories import shade
from saip_bench.synth.skeleton import G_BAG, G_HEAD, G_TORSO, J


def _lerp(a, b, t: float) -> np.ndarray:
    return np.asarray(a) + (np.asarray(b) - np.asarray(a)) * t


def garment_elements(v: SimpleNamespace) -> list[tuple[float, Callable[[], None]]]:
    """The torso (upper garment, its details, straps, scarf), the pelvis and the skirt / long coat."""
    pt, app, xy, dep, S, sz = v.pt, v.app, v.xy, v.dep, v.S, v.sz
    cos_t, sin_t, inst, patterns = v.cos_t, v.sin_t, v.inst, v.patterns
    up, low, coat, skin, build = app["upper"], app["lower"], app["coat"], app["skin"], sz["build"]
    sho_c, hip_c, w_sho, w_hip, y_neck, hem_y = v.sho_c, v.hip_c, v.w_sho, v.w_hip, v.y_neck, v.hem_y
    up_rgb, up_code, low_rgb, ltype, pants_code = v.up_rgb, v.up_code, v.low_rgb, v.ltype, v.pants_code
    elements: list[tuple[float, Callable[[], None]]] = []

    def torso_poly(y0: float, y1: float, widen: float = 1.0) -> list:
        c0 = _lerp(sho_c, hip_c, (y0 - sho_c[1]) / max(hip_c[1] - sho_c[1], 1e-6))
        c1 = _lerp(sho_c, hip_c, (y1 - sho_c[1]) / max(hip_c[1] - sho_c[1], 1e-6))
        w1 = w_sho + (w_hip - w_sho) * min(1.0, (y1 - sho_c[1]) / max(hip_c[1] - sho_c[1], 1e-6))
        w1 *= widen
        return [
            (c0[0] - 0.75 * w_sho, y0),
            (c0[0] + 0.75 * w_sho, y0),
            (sho_c[0] + w_sho, sho_c[1] + 0.03 * S),
            (c1[0] + w1, y1),
            (c1[0] - w1, y1),
            (sho_c[0] - w_sho, sho_c[1] + 0.03 * S),
        ]

    # ---- torso and what is worn on it
    def torso() -> None:
        neck_top = xy[J["head"]] + (0, 0.3 * sz["head_h"] * S)
        pt.limb(neck_top, xy[J["neck"]] + (0, 0.02 * S), 0.055 * S * build, skin, P.FACE, G_HEAD)
        front = cos_t > 0.3
        if coat is not None:
            crgb = coat["colour"]["rgb"]
            pt.polygon(torso_poly(y_neck, hem_y + 0.02 * S, 1.08), crgb, P.COAT, G_TORSO)
            if front:
                pt.line(
                    [(sho_c[0], y_neck + 0.04 * S), (hip_c[0], hem_y)],
                    0.008 * S,
                    shade(crgb, 0.6),
                    P.COAT,
                    G_TORSO,
                )
        else:
            pt.polygon(torso_poly(y_neck, hem_y), up_rgb, up_code, G_TORSO)
            if up["type"] == "jacket" and front:
                mid = _lerp(sho_c, hip_c, 0.5)
                inner = [
                    (sho_c[0] - 0.25 * w_sho, y_neck),
                    (sho_c[0] + 0.25 * w_sho, y_neck),
                    (hip_c[0] + 0.2 * w_hip, hem_y),
                    (hip_c[0] - 0.2 * w_hip, hem_y),
                ]
                pt.polygon(inner, up["colour2"]["rgb"], P.UPPER, G_TORSO)
                pt.line(
                    [(mid[0] + 0.22 * w_sho, y_neck), (hip_c[0] + 0.2 * w_hip, hem_y)],
                    0.006 * S,
                    (200, 200, 200),
                    P.COAT,
                    G_TORSO,
                )
            elif up["type"] == "suit" and front:
                v = [
                    (sho_c[0] - 0.3 * w_sho, y_neck),
                    (sho_c[0] + 0.3 * w_sho, y_neck),
                    (sho_c[0], y_neck + 0.12 * S),
                ]
                pt.polygon(v, up["colour2"]["rgb"], P.UPPER, G_TORSO)
                pt.line(
                    [(sho_c[0], y_neck + 0.01 * S), (sho_c[0], y_neck + 0.1 * S)],
                    0.014 * S,
                    (150, 20, 30),
                    P.UPPER,
                    G_TORSO,
                )
            elif up["type"] == "vneck" and front:
                v = [
                    (sho_c[0] - 0.3 * w_sho, y_neck),
                    (sho_c[0] + 0.3 * w_sho, y_neck),
                    (sho_c[0], y_neck + 0.08 * S),
                ]
                pt.polygon(v, skin, P.UPPER, G_TORSO)
            elif up["type"] == "shirt" and front:
                for sgn in (-1, 1):
                    c = [
                        (sho_c[0], y_neck + 0.02 * S),
                        (sho_c[0] + sgn * 0.3 * w_sho, y_neck - 0.005 * S),
                        (sho_c[0] + sgn * 0.22 * w_sho, y_neck + 0.04 * S),
                    ]
                    pt.polygon(c, (235, 235, 235), P.UPPER, G_TORSO)
            elif up["type"] == "sweater":
                band = torso_poly(hem_y - 0.025 * S, hem_y)
                pt.polygon(band, shade(up_rgb, 0.7), P.UPPER, G_TORSO)
            if up["logo"] and abs(cos_t) > 0.3:
                lc = _lerp(sho_c, hip_c, 0.4 if front else 0.35)
                r = (0.035 if front else 0.05) * S
                pt.ellipse(lc[0], lc[1], r * abs(cos_t), r, up["logo_colour"]["rgb"], P.UPPER, G_TORSO)
                pt.polygon(
                    [
                        (lc[0], lc[1] - 0.6 * r),
                        (lc[0] + 0.5 * r * abs(cos_t), lc[1] + 0.4 * r),
                        (lc[0] - 0.5 * r * abs(cos_t), lc[1] + 0.4 * r),
                    ],
                    up_rgb,
                    P.UPPER,
                    G_TORSO,
                )
            elif up["logo"]:
                lc = _lerp(sho_c, hip_c, 0.4) + (0.4 * w_sho * np.sign(sin_t), 0)
                pt.ellipse(lc[0], lc[1], 0.015 * S, 0.025 * S, up["logo_colour"]["rgb"], P.UPPER, G_TORSO)
            if up_code == P.C_UPPER_PAT:
                pat = {
                    "code": P.C_UPPER_PAT,
                    "kind": up["pattern"],
                    "colour": up["colour2"]["rgb"],
                    "period": up["period"] * S,
                    "origin": (float(sho_c[0]), float(y_neck)),
                    "split_y": float(_lerp(sho_c, hip_c, 0.45)[1]),
                    "inst": inst,
                }
                patterns.append(pat)
        for bag in app["bags"]:
            if bag["type"] == "backpack" and cos_t > -0.3:
                for sgn in (-1, 1):
                    s0 = (sho_c[0] + sgn * 0.55 * w_sho, y_neck + 0.01 * S)
                    pt.line(
                        [s0, (s0[0] + sgn * 0.1 * w_sho, s0[1] + 0.17 * S)],
                        0.018 * S,
                        shade(bag["colour"]["rgb"], 0.8),
                        0,
                        G_BAG,
                    )
            elif bag["type"] == "shoulder":
                sgn = 1 if bag["side"] == "left" else -1
                a = xy[J[f"{bag['side'][0]}_sho"]]
                b = xy[J["r_hip" if sgn > 0 else "l_hip"]]
                pt.line(
                    [(a[0], a[1] - 0.01 * S), (b[0], b[1])],
                    0.012 * S,
                    shade(bag["colour"]["rgb"], 0.7),
                    0,
                    G_BAG,
                )
        if app["muffler"] is not None:
            m = app["muffler"]["colour"]["rgb"]
            pt.ellipse(sho_c[0], y_neck + 0.005 * S, 0.55 * w_sho, 0.028 * S, m, P.SCARF, G_TORSO)
            if front:
                pt.polygon(
                    [
                        (sho_c[0] + 0.1 * w_sho, y_neck),
                        (sho_c[0] + 0.35 * w_sho, y_neck),
                        (sho_c[0] + 0.3 * w_sho, y_neck + 0.1 * S),
                        (sho_c[0] + 0.12 * w_sho, y_neck + 0.1 * S),
                    ],
                    m,
                    P.SCARF,
                    G_TORSO,
                )

    elements.append((0.0, torso))

    # ---- the lower garment's top (pelvis) and skirts / long coats
    def pelvis() -> None:
        y0, y1 = hip_c[1] - 0.035 * S, hip_c[1] + 0.05 * S
        poly = [
            (hip_c[0] - w_hip, y0),
            (hip_c[0] + w_hip, y0),
            (hip_c[0] + w_hip * 1.02, y1),
            (hip_c[0] - w_hip * 1.02, y1),
        ]
        if ltype in ("trousers", "jeans", "shorts"):
            pt.polygon(poly, low_rgb, pants_code, G_TORSO)
        elif ltype == "skirt" or ltype == "dress":
            pt.polygon(poly, low_rgb, P.DRESS if ltype == "dress" else P.SKIRT, G_TORSO)

    leg_depths = [float((dep[J[f"{s}_hip"]] + dep[J[f"{s}_knee"]]) / 2) for s in "lr"]
    elements.append((min(leg_depths) - 0.05, pelvis))

    def skirt() -> None:
        knee_y = max(xy[J["l_knee"], 1], xy[J["r_knee"], 1])
        span = abs(xy[J["l_knee"], 0] - xy[J["r_knee"], 0]) / 2
        if coat is not None:
            y0, y1, rgb, code = hem_y - 0.02 * S, knee_y + 0.03 * S, coat["colour"]["rgb"], P.COAT
        elif ltype in ("skirt", "dress"):
            y0, y1, rgb = hip_c[1] - 0.035 * S, knee_y - 0.01 * S, low_rgb
            code = (
                P.DRESS if ltype == "dress" else (P.C_SKIRT_PAT if low["pattern"] == "pattern" else P.SKIRT)
            )
        else:
            return
        w1 = max(w_hip * 1.3, span + 0.045 * S)
        pt.polygon(
            [
                (hip_c[0] - w_hip * 1.05, y0),
                (hip_c[0] + w_hip * 1.05, y0),
                (hip_c[0] + w1, y1),
                (hip_c[0] - w1, y1),
            ],
            rgb,
            code,
            G_TORSO,
        )
        if low["pattern"] == "stripe" and coat is None:
            for sgn in (-1, 1):
                pt.line(
                    [(hip_c[0] + sgn * w_hip, y0), (hip_c[0] + sgn * w1 * 0.95, y1)],
                    0.012 * S,
                    low["colour2"]["rgb"],
                    code,
                    G_TORSO,
                )

    elements.append((max(leg_depths) + 0.01, skirt))
    return elements

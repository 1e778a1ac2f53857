"""Things a person carries (bags, a box held in front) and their head (face, hair, glasses, hat).

Each function returns ``(depth, draw)`` elements that :func:`saip_bench.synth.person.draw_person` sorts
together with the body parts, so a backpack is hidden behind the body in a front view and covers it from
the back.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from saip_bench.synth import painter as P
from saip_bench.synth.skeleton import G_BAG, G_HAIR, G_HEAD, G_HELD, J, face_points, project


def shade(rgb, f: float) -> tuple[int, int, int]:
    """``rgb`` scaled by ``f`` (darker below 1), clipped to 0-255."""
    return tuple(int(min(255, max(0, c * f))) for c in rgb)


def carried_elements(v: SimpleNamespace) -> list[tuple[float, Callable[[], None]]]:
    """Bags (backpack, shoulder bag, handbag, plastic bag) and a held box, as depth-sorted elements."""
    pt, app, j3, xy, dep, S = v.pt, v.app, v.j3, v.xy, v.dep, v.S
    yaw, cx, top, hw, sz = v.yaw, v.cx, v.top, v.hw, v.sz
    elements: list[tuple[float, Callable[[], None]]] = []
    build = sz["build"]
    for bag in app["bags"]:
        rgb = bag["colour"]["rgb"]
        if bag["type"] == "backpack":
            c3 = j3[J["chest"]] + (0.0, 0.03, -(0.065 * build + 0.05))
            (c2,), (cd,) = project(c3[None], yaw, cx, top, S)
            bw, bh = hw(0.085, 0.05), 0.12 * S

            def backpack(c2=c2, bw=bw, bh=bh, rgb=rgb) -> None:
                pt.polygon(
                    [
                        (c2[0] - bw, c2[1] - bh),
                        (c2[0] + bw, c2[1] - bh),
                        (c2[0] + bw * 1.05, c2[1] + bh),
                        (c2[0] - bw * 1.05, c2[1] + bh),
                    ],
                    rgb,
                    0,
                    G_BAG,
                )
                pt.ellipse(c2[0], c2[1] - bh, bw, 0.03 * S, rgb, 0, G_BAG)
                pt.line(
                    [(c2[0] - 0.7 * bw, c2[1] + 0.3 * bh), (c2[0] + 0.7 * bw, c2[1] + 0.3 * bh)],
                    0.01 * S,
                    shade(rgb, 0.6),
                    0,
                    G_BAG,
                )

            elements.append((float(cd), backpack))
        elif bag["type"] == "shoulder":
            opp = "r" if bag["side"] == "left" else "l"
            sgn = -1.0 if opp == "r" else 1.0
            c3 = j3[J[f"{opp}_hip"]] + (sgn * 0.07, -0.01, 0.03)
            (c2,), (cd,) = project(c3[None], yaw, cx, top, S)
            bw = hw(0.07, 0.03)

            def shoulder_bag(c2=c2, bw=bw, rgb=rgb) -> None:
                pt.polygon(
                    [
                        (c2[0] - bw, c2[1] - 0.05 * S),
                        (c2[0] + bw, c2[1] - 0.05 * S),
                        (c2[0] + bw, c2[1] + 0.05 * S),
                        (c2[0] - bw, c2[1] + 0.05 * S),
                    ],
                    rgb,
                    0,
                    G_BAG,
                )
                pt.line(
                    [(c2[0] - bw, c2[1] - 0.02 * S), (c2[0] + bw, c2[1] - 0.02 * S)],
                    0.008 * S,
                    shade(rgb, 0.6),
                    0,
                    G_BAG,
                )

            elements.append((float(cd) + 0.08, shoulder_bag))
        else:
            s = bag["side"][0]
            wri, tip = xy[J[f"{s}_wri"]], xy[J[f"{s}_htip"]]
            plastic = bag["type"] == "plastic"
            col = (238, 238, 230) if plastic else rgb

            def hand_bag(wri=wri, tip=tip, col=col, plastic=plastic) -> None:
                top_y, w = tip[1] - 0.01 * S, (0.045 if plastic else 0.055) * S
                h = (0.12 if plastic else 0.08) * S
                pt.line(
                    [
                        (wri[0] - 0.6 * w, top_y + 0.02 * S),
                        (wri[0], wri[1]),
                        (wri[0] + 0.6 * w, top_y + 0.02 * S),
                    ],
                    0.008 * S,
                    shade(col, 0.6),
                    0,
                    G_BAG,
                )
                pts = [
                    (wri[0] - 0.8 * w, top_y),
                    (wri[0] + 0.8 * w, top_y),
                    (wri[0] + w, top_y + h),
                    (wri[0] - w, top_y + h),
                ]
                pt.polygon(pts, col, 0, G_BAG)
                if plastic:
                    pt.line(
                        [(wri[0] - 0.5 * w, top_y + 0.5 * h), (wri[0] + 0.5 * w, top_y + 0.5 * h)],
                        0.006 * S,
                        (200, 60, 60),
                        0,
                        G_BAG,
                    )

            elements.append((float(dep[J[f"{s}_wri"]]) + 0.04, hand_bag))
    if app["hold"] is not None:
        mid = (xy[J["l_wri"]] + xy[J["r_wri"]]) / 2
        md = float((dep[J["l_wri"]] + dep[J["r_wri"]]) / 2)
        bw = max(hw(0.12, 0.09), 0.06 * S)
        hrgb = app["hold"]["colour"]["rgb"]

        def held() -> None:
            pt.polygon(
                [
                    (mid[0] - bw, mid[1] - 0.08 * S),
                    (mid[0] + bw, mid[1] - 0.08 * S),
                    (mid[0] + bw, mid[1] + 0.03 * S),
                    (mid[0] - bw, mid[1] + 0.03 * S),
                ],
                hrgb,
                0,
                G_HELD,
            )
            pt.line(
                [(mid[0] - bw, mid[1] - 0.08 * S), (mid[0] + bw, mid[1] - 0.08 * S)],
                0.008 * S,
                shade(hrgb, 0.6),
                0,
                G_HELD,
            )

        elements.append((md + 0.031, held))
    return elements


def head_elements(v: SimpleNamespace) -> tuple[list[tuple[float, Callable[[], None]]], dict]:
    """Long hair behind the head and the head itself; also the face landmarks and the head box."""
    pt, app, j3, xy, S = v.pt, v.app, v.j3, v.xy, v.S
    yaw, cx, top, hw, cos_t, sin_t, sz = v.yaw, v.cx, v.top, v.hw, v.cos_t, v.sin_t, v.sz
    elements: list[tuple[float, Callable[[], None]]] = []
    skin, sho_c = app["skin"], v.sho_c
    hc = xy[J["head"]]
    hh, hwid, hdep = sz["head_h"], sz["head_w"], sz["head_d"]
    rx, ry = hw(hwid, hdep), hh * S / 2
    hair_rgb = app["hair"]["colour"]["rgb"]
    if app["hair"]["long"]:
        b3 = j3[J["head"]] + (0.0, 0.0, -0.8 * hdep)
        (b2,), (bd,) = project(b3[None], yaw, cx, top, S)
        y_end = sho_c[1] + 0.07 * S

        def hair_back() -> None:
            w0, w1 = rx * 1.02, rx * 1.12
            pt.polygon(
                [(b2[0] - w0, hc[1]), (b2[0] + w0, hc[1]), (b2[0] + w1, y_end), (b2[0] - w1, y_end)],
                hair_rgb,
                P.HAIR,
                G_HAIR,
            )

        elements.append((float(bd) + 0.001, hair_back))
    face_xy, face_vis = face_points(j3[J["head"]], sz, yaw, cx, top, S)

    def head() -> None:
        pt.ellipse(hc[0], hc[1], rx, ry, skin, P.FACE, G_HEAD)
        pt.ellipse(hc[0], hc[1] - 0.04 * ry, rx * 1.04, ry * 1.02, hair_rgb, P.HAIR, G_HAIR)
        if cos_t > -0.35:
            fx = hc[0] + 0.35 * rx * sin_t
            pt.ellipse(fx, hc[1] + 0.22 * ry, rx * (0.8 - 0.25 * abs(sin_t)), ry * 0.74, skin, P.FACE, G_HEAD)
            if abs(sin_t) > 0.6:
                n = xy[J["nose"]]
                pt.polygon(
                    [
                        (n[0] - 0.25 * rx * sin_t, n[1] - 0.12 * ry),
                        (n[0] + 0.12 * rx * sin_t, n[1]),
                        (n[0] - 0.25 * rx * sin_t, n[1] + 0.1 * ry),
                    ],
                    skin,
                    P.FACE,
                    G_HEAD,
                )
            if cos_t > 0.3:
                m = face_xy[62]
                pt.line(
                    [(m[0] - 0.2 * rx * cos_t, m[1]), (m[0] + 0.2 * rx * cos_t, m[1])],
                    max(1.0, 0.04 * ry),
                    (150, 70, 70),
                    P.FACE,
                    G_HEAD,
                )
            for eye, idx in (("l_eye", slice(42, 48)), ("r_eye", slice(36, 42))):
                if not face_vis[idx].any():
                    continue
                e = xy[J[eye]]
                pt.ellipse(e[0], e[1], max(0.7, 0.09 * rx), max(0.7, 0.07 * ry), (30, 25, 25), P.FACE, G_HEAD)
                if app["glasses"] == "sunglasses":
                    pt.ellipse(e[0], e[1], 0.24 * rx, 0.12 * ry, (15, 15, 20), P.SUNGLASSES, G_HEAD)
                elif app["glasses"] == "glasses":
                    pt.line(
                        [
                            (e[0] - 0.22 * rx, e[1] - 0.1 * ry),
                            (e[0] + 0.22 * rx, e[1] - 0.1 * ry),
                            (e[0] + 0.22 * rx, e[1] + 0.1 * ry),
                            (e[0] - 0.22 * rx, e[1] + 0.1 * ry),
                            (e[0] - 0.22 * rx, e[1] - 0.1 * ry),
                        ],
                        max(1.0, 0.035 * ry),
                        (40, 40, 40),
                        P.SUNGLASSES,
                        G_HEAD,
                    )
        hat = app["hat"]
        if hat is not None:
            hrgb = hat["colour"]["rgb"]
            if hat["type"] == "brim":
                pt.ellipse(hc[0], hc[1] - 0.4 * ry, rx * 1.7, 0.16 * ry, hrgb, P.HAT, G_HEAD)
                pt.ellipse(hc[0], hc[1] - 0.65 * ry, rx * 0.95, 0.42 * ry, hrgb, P.HAT, G_HEAD)
            else:
                pt.ellipse(hc[0], hc[1] - 0.55 * ry, rx * 1.07, 0.5 * ry, hrgb, P.HAT, G_HEAD)
                if hat["type"] == "cap":
                    pt.ellipse(
                        hc[0] + 0.55 * rx * sin_t,
                        hc[1] - 0.1 * ry,
                        rx * (1.05 - 0.2 * abs(sin_t)),
                        0.1 * ry,
                        shade(hrgb, 0.8),
                        P.HAT,
                        G_HEAD,
                    )

    elements.append((10.0, head))
    top_y = hc[1] - ry * (1.3 if app["hat"] is not None else 1.05)
    head_box = (float(hc[0] - rx * 1.1), float(top_y), float(rx * 2.2), float(hc[1] + ry - top_y))
    return elements, {"face_xy": face_xy, "face_vis": face_vis, "head_box": head_box}

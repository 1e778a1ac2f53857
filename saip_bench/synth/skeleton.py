"""A walking 3-D stick figure, its orthographic projection, and COCO-17 / COCO-WholeBody-133 keypoints.

Body frame: x = the person's left, y = down (0 = top of the head, about 1 = soles), z = the way they
face; units of the person's height. Yaw 0 faces the camera, 90 faces image-right, 180 shows the back.
"""

from __future__ import annotations

import math

import numpy as np

# 3-D joints the renderer and the keypoints use (hand and face points are derived after projection).
JOINTS: tuple[str, ...] = (
    "head", "neck", "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri", "l_hip", "r_hip", "l_knee",
    "r_knee", "l_ank", "r_ank", "l_toe", "r_toe", "l_heel", "r_heel", "l_htip", "r_htip", "nose", "l_eye",
    "r_eye", "l_ear", "r_ear", "pelvis", "l_stoe", "r_stoe", "l_btoe", "r_btoe", "chest",
)  # fmt: skip
J = {name: i for i, name in enumerate(JOINTS)}
_BODY17 = (
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_sho",
    "r_sho",
    "l_elb",
    "r_elb",
    "l_wri",
    "r_wri",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ank",
    "r_ank",
)
_FEET6 = ("l_btoe", "l_stoe", "l_heel", "r_btoe", "r_stoe", "r_heel")
BODY17_IDX = np.array([J[n] for n in _BODY17])
FEET6_IDX = np.array([J[n] for n in _FEET6])

# Drawing / visibility groups: a keypoint counts as occluded when its pixel shows a group outside its set.
G_HEAD, G_TORSO, G_HAIR, G_BAG, G_HELD = 1, 2, 3, 4, 5
G_LIMB = {  # (side, segment) -> group
    ("l", "uarm"): 6, ("l", "farm"): 7, ("l", "hand"): 8, ("r", "uarm"): 9, ("r", "farm"): 10,
    ("r", "hand"): 11, ("l", "thigh"): 12, ("l", "shin"): 13, ("l", "foot"): 14, ("r", "thigh"): 15,
    ("r", "shin"): 16, ("r", "foot"): 17,
}  # fmt: skip
N_GROUPS = 18


def _face_template() -> tuple[np.ndarray, np.ndarray]:
    """The 68 iBUG landmarks as (u, v): u = the person's left, v down, head centre 0, chin about 0.9."""
    pts: list[tuple[float, float]] = []
    pts += [(-0.9 * math.cos(math.pi * k / 16), 0.9 * math.sin(math.pi * k / 16)) for k in range(17)]
    pts += [(-0.7 + 0.1375 * k, -0.14 - 0.05 * math.sin(math.pi * k / 4)) for k in range(5)]
    pts += [(0.15 + 0.1375 * k, -0.14 - 0.05 * math.sin(math.pi * k / 4)) for k in range(5)]
    pts += [(0.0, -0.02 + 0.1 * k) for k in range(4)]
    pts += [(-0.2 + 0.1 * k, 0.38 + 0.03 * (1 - abs(k - 2) / 2)) for k in range(5)]
    for cx in (-0.4, 0.4):
        pts += [
            (
                cx + 0.17 * math.cos(math.pi + math.pi * k / 3),
                0.05 + 0.06 * math.sin(math.pi + math.pi * k / 3),
            )
            for k in range(6)
        ]
    pts += [
        (
            0.3 * math.cos(math.pi + 2 * math.pi * k / 12),
            0.62 + 0.1 * math.sin(math.pi + 2 * math.pi * k / 12),
        )
        for k in range(12)
    ]
    pts += [
        (0.2 * math.cos(math.pi + 2 * math.pi * k / 8), 0.62 + 0.04 * math.sin(math.pi + 2 * math.pi * k / 8))
        for k in range(8)
    ]
    uv = np.array(pts, dtype=np.float64)
    return uv[:, 0], uv[:, 1]


FACE_U, FACE_V = _face_template()

# Hand: (along the fingers, across towards the thumb), in hand lengths; wrist, thumb 1-4, 4 fingers x 4.
_HAND = [(0.0, 0.0), (0.18, 0.22), (0.35, 0.32), (0.52, 0.38), (0.66, 0.42)]
for _b, _len in ((0.18, 1.0), (0.05, 1.04), (-0.08, 0.98), (-0.2, 0.85)):
    _HAND += [(0.45 + (a - 0.45) * _len, _b * (1 + 0.15 * a)) for a in (0.45, 0.7, 0.86, 1.0)]
HAND_TEMPLATE = np.array(_HAND, dtype=np.float64)
# Outline through the template (drawn as the hand's polygon, so every hand keypoint lies on or inside it).
HAND_OUTLINE = np.array(
    [
        (0.0, -0.22),
        (0.45, -0.24),
        (0.83, -0.2),
        (0.98, -0.09),
        (1.04, 0.05),
        (1.0, 0.18),
        (0.66, 0.44),
        (0.35, 0.34),
        (0.0, 0.24),
    ],
    dtype=np.float64,
)


def body_joints(
    app: dict, phase: float, *, hold_front: bool, carry: dict[str, str], gait: float = 1.0
) -> tuple[np.ndarray, dict]:
    """3-D joints of the person described by ``app`` at walking ``phase``.

    Args:
        app: the appearance dict (its ``body`` proportions, stride and arm swing are used).
        phase: walking phase in radians.
        hold_front: both forearms raised to hold an object in front of the body.
        carry: side ("l"/"r") -> what that hand carries ("handbag" / "plastic"): the arm hangs still.
        gait: scales stride and arm swing (0 stands still, 1 is the person's usual walk).

    Returns:
        ``(joints, sizes)``: ``(len(JOINTS), 3)`` positions and a dict of segment sizes (in body heights).
    """
    b = app["body"]
    hh, sw, hw, build, stoop = b["head"], b["shoulder"], b["hip"], b["build"], b["stoop"]
    k = (1.0 - hh) / 0.87

    def y(adult: float) -> float:
        return hh + (adult - 0.13) * k

    p = np.zeros((len(JOINTS), 3))
    hwid, hdep = 0.37 * hh, 0.42 * hh
    p[J["head"]] = (0, hh / 2, stoop)
    p[J["neck"]] = (0, y(0.15), stoop * 0.6)
    p[J["chest"]] = (0, y(0.3), 0.02 * build)
    p[J["pelvis"]] = (0, y(0.52), 0)
    stride, swing = app["stride"] * gait, app["arm_swing"] * gait
    lt, ls = 0.235 * k, 0.205 * k
    for side, sign, ph in (("l", 1.0, phase), ("r", -1.0, phase + math.pi)):
        hip = np.array((sign * hw, y(0.52), 0.0))
        a = stride * math.sin(ph)
        bend = 1.2 * stride * max(0.0, math.cos(ph))
        knee = hip + lt * np.array((0.0, math.cos(a), math.sin(a)))
        ankle = knee + ls * np.array((0.0, math.cos(a - bend), math.sin(a - bend)))
        p[J[f"{side}_hip"]], p[J[f"{side}_knee"]], p[J[f"{side}_ank"]] = hip, knee, ankle
        fh, fl = 0.035 * k, 0.085 * k
        p[J[f"{side}_toe"]] = ankle + (0.0, fh, fl)
        p[J[f"{side}_btoe"]] = ankle + (-sign * 0.012, fh, fl)
        p[J[f"{side}_stoe"]] = ankle + (sign * 0.018, fh, fl * 0.8)
        p[J[f"{side}_heel"]] = ankle + (0.0, fh, -0.022 * k)
        sho = np.array((sign * sw * min(build, 1.1), y(0.185), stoop * 0.4))
        g, d, ab = -swing * math.sin(ph), 0.15 + 0.5 * swing * max(0.0, -math.sin(ph)), 0.1 * build
        if hold_front:
            g, d = 0.3, 1.35
        elif side in carry:
            g, d = 0.0, 0.05
        elb = sho + 0.175 * k * np.array((sign * math.sin(ab), math.cos(g), math.sin(g)))
        fx = -0.7 * sign if hold_front else 0.3 * sign
        wri = elb + 0.15 * k * np.array((fx * math.sin(ab + 0.2), math.cos(g + d), math.sin(g + d)))
        p[J[f"{side}_sho"]], p[J[f"{side}_elb"]], p[J[f"{side}_wri"]] = sho, elb, wri
        p[J[f"{side}_htip"]] = wri + 0.085 * k * (wri - elb) / (np.linalg.norm(wri - elb) + 1e-9)
    head = p[J["head"]]
    p[J["nose"]] = head + (0, 0.12 * hh, hdep)
    p[J["l_eye"]], p[J["r_eye"]] = (
        head + (0.38 * hwid, 0.02 * hh, 0.85 * hdep),
        head + (-0.38 * hwid, 0.02 * hh, 0.85 * hdep),
    )
    p[J["l_ear"]], p[J["r_ear"]] = (
        head + (hwid, 0.04 * hh, -0.05 * hdep),
        head + (-hwid, 0.04 * hh, -0.05 * hdep),
    )
    # Stand on the lower foot: whatever the leg angles, the soles touch y = 1.
    p[:, 1] += 1.0 - max(p[J["l_heel"], 1], p[J["r_heel"], 1])
    sizes = {"head_h": hh, "head_w": hwid, "head_d": hdep, "k": k, "build": build}
    return p, sizes


def project(
    points: np.ndarray, yaw_deg: float, cx: float, top: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic projection: ``(N, 2)`` pixel positions and ``(N,)`` depth towards the camera."""
    t = math.radians(yaw_deg)
    c, s = math.cos(t), math.sin(t)
    xy = np.empty((len(points), 2))
    xy[:, 0] = cx + scale * (points[:, 0] * c + points[:, 2] * s)
    xy[:, 1] = top + scale * points[:, 1]
    depth = points[:, 2] * c - points[:, 0] * s
    return xy, depth


def face_points(
    head: np.ndarray, sizes: dict, yaw_deg: float, cx: float, top: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The 68 face landmarks in pixels, and whether each faces the camera."""
    hw, hd, hh = sizes["head_w"], sizes["head_d"], sizes["head_h"]
    u = FACE_U * 0.9
    zf = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    pts = np.stack([head[0] + u * hw, head[1] + FACE_V * hh * 0.5, head[2] + zf * hd], axis=1)
    xy, _ = project(pts, yaw_deg, cx, top, scale)
    t = math.radians(yaw_deg)
    facing = zf * math.cos(t) - u * math.sin(t)
    return xy, facing > 0.15


def hand_points(
    wrist: np.ndarray, elbow: np.ndarray, length: float, thumb_dir_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """21 hand keypoints and the hand's outline polygon in pixels, fingers continuing the forearm."""
    u = wrist - elbow
    n = float(np.hypot(*u))
    u = u / n if n > 1e-6 else np.array((0.0, 1.0))
    w = np.array((-u[1], u[0]))
    if w[0] * thumb_dir_x < 0:
        w = -w
    pts = wrist + length * (HAND_TEMPLATE[:, :1] * u + HAND_TEMPLATE[:, 1:] * w)
    outline = wrist + length * (HAND_OUTLINE[:, :1] * u + HAND_OUTLINE[:, 1:] * w)
    return pts, outline


def _allowed() -> np.ndarray:
    """(133, N_GROUPS) bool: which drawn groups may cover each keypoint without occluding it."""
    a = np.zeros((133, N_GROUPS), dtype=bool)
    a[:, 0] = True  # background: nothing drawn over the point
    own = {"nose": [G_HEAD], "eye": [G_HEAD], "ear": [G_HEAD, G_HAIR]}
    for i, name in enumerate(_BODY17):
        side, part = name.split("_") if "_" in name else ("", name)
        if part in own:
            groups = own[part]
        elif part == "sho":
            groups = [G_TORSO, G_HAIR, G_LIMB[(side, "uarm")]]
        elif part == "elb":
            groups = [G_LIMB[(side, "uarm")], G_LIMB[(side, "farm")]]
        elif part == "wri":
            groups = [G_LIMB[(side, "farm")], G_LIMB[(side, "hand")]]
        elif part == "hip":
            groups = [G_TORSO, G_LIMB[(side, "thigh")]]
        elif part == "knee":
            groups = [G_TORSO, G_LIMB[(side, "thigh")], G_LIMB[(side, "shin")]]
        else:
            groups = [G_LIMB[(side, "shin")], G_LIMB[(side, "foot")]]
        a[i, groups] = True
    for i, name in enumerate(_FEET6):
        a[17 + i, [G_LIMB[(name[0], "foot")], G_LIMB[(name[0], "shin")]]] = True
    a[23:91, G_HEAD] = True
    a[91:112, [G_LIMB[("l", "hand")], G_LIMB[("l", "farm")]]] = True
    a[112:133, [G_LIMB[("r", "hand")], G_LIMB[("r", "farm")]]] = True
    return a


ALLOWED = _allowed()


def keypoint_visibility(kps: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Set v = 1 where a keypoint (v = 2) lies under a drawn group it does not belong to; in place."""
    h, w = groups.shape
    idx = np.flatnonzero(kps[:, 2] == 2)
    x = np.clip(kps[idx, 0].astype(np.int64), 0, w - 1)
    y = np.clip(kps[idx, 1].astype(np.int64), 0, h - 1)
    g = groups[y, x]
    hidden = ~ALLOWED[idx, g]
    kps[idx[hidden], 2] = 1
    return kps


def clip_keypoints(kps: np.ndarray, width: int, height: int) -> np.ndarray:
    """COCO convention: points outside the image (or unlabelled) become (0, 0, 0); in place."""
    out = (kps[:, 0] < 0) | (kps[:, 1] < 0) | (kps[:, 0] >= width) | (kps[:, 1] >= height) | (kps[:, 2] == 0)
    kps[out] = 0.0
    return kps


#: Index ranges of the COCO-WholeBody parts inside the 133 keypoints.
WHOLEBODY_PARTS: dict[str, tuple[int, int]] = {
    "body": (0, 17), "foot": (17, 23), "face": (23, 91), "left_hand": (91, 112), "right_hand": (112, 133),
}  # fmt: skip

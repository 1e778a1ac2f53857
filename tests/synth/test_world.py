import re

import numpy as np

from saip_bench.synth import (
    LIP_CLASSES,
    PA100K_ATTRIBUTES,
    PETA_ATTRIBUTES,
    VIEW_ATTRIBUTES,
    WHOLEBODY_PARTS,
    SynthWorld,
    mask_box,
)  # fmt: skip

LIP = {name: i for i, name in enumerate(LIP_CLASSES)}


def test_attribute_name_lists():
    assert len(PA100K_ATTRIBUTES) == 26 and len(set(PA100K_ATTRIBUTES)) == 26
    assert len(PETA_ATTRIBUTES) == 35 and len(set(PETA_ATTRIBUTES)) == 35
    assert PA100K_ATTRIBUTES[0] == "Female" and PA100K_ATTRIBUTES[-1] == "boots"
    assert "Skirt&Dress" in PA100K_ATTRIBUTES and "personalMale" in PETA_ATTRIBUTES
    assert WHOLEBODY_PARTS["right_hand"] == (112, 133)


def test_same_seed_same_pixels():
    a = SynthWorld(3).render_person(
        SynthWorld(3).identity(5), 2, size=(128, 64), rng=np.random.default_rng(1)
    )
    w = SynthWorld(3)
    w.render_person(w.identity(9), 4, size=(96, 48), rng=np.random.default_rng(5))  # history must not matter
    b = w.render_person(w.identity(5), 2, size=(128, 64), rng=np.random.default_rng(1))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.part_mask, b.part_mask)
    assert np.array_equal(a.keypoints133, b.keypoints133)
    assert a.caption == b.caption and a.bbox == b.bbox
    c = w.render_person(w.identity(5), 2, size=(128, 64), rng=np.random.default_rng(2))
    assert not np.array_equal(a.image, c.image)
    other = SynthWorld(4).render_person(
        SynthWorld(4).identity(5), 2, size=(128, 64), rng=np.random.default_rng(1)
    )
    assert not np.array_equal(a.image, other.image)


def test_identity_persists_across_cameras(world, samples):
    assert world.identity(3).appearance == SynthWorld(7).identity(3).appearance
    for a, b in zip(samples[::2], samples[1::2], strict=True):
        assert a.pid == b.pid and (a.camid, b.camid) == (1, 2)
        fixed_a = {k: v for k, v in a.attributes.items() if k not in VIEW_ATTRIBUTES}
        fixed_b = {k: v for k, v in b.attributes.items() if k not in VIEW_ATTRIBUTES}
        assert fixed_a == fixed_b
        assert not np.array_equal(a.image, b.image)
    # Different people look different: no two of the 20 share an appearance.
    looks = {repr(world.identity(pid).appearance) for pid in range(20)}
    assert len(looks) == 20


def test_attributes_complete_and_one_hot(samples):
    names = set(PA100K_ATTRIBUTES) | set(PETA_ATTRIBUTES)
    for s in samples:
        a = s.attributes
        assert set(a) == names and all(isinstance(v, bool) for v in a.values())
        assert sum(a[k] for k in ("AgeLess18", "Age18-60", "AgeOver60")) == 1
        assert sum(a[k] for k in VIEW_ATTRIBUTES) == 1
        assert (
            sum(a[k] for k in ("personalLess30", "personalLess45", "personalLess60", "personalLarger60")) == 1
        )
        assert a["ShortSleeve"] != a["LongSleeve"] and a["Female"] != a["personalMale"]
        assert a["carryingNothing"] == (
            not any(
                a[k]
                for k in ("carryingBackpack", "carryingOther", "carryingMessengerBag", "carryingPlasticBags")
            )
        )
        assert a["Backpack"] == a["carryingBackpack"]


def test_attributes_match_the_drawing(samples):
    """What the attributes claim is visible in the part mask (and what is absent is not drawn)."""
    for s in samples:
        ids = set(np.unique(s.part_mask).tolist())
        a = s.attributes
        assert a["Hat"] == (LIP["hat"] in ids), s.caption
        assert a["LongCoat"] <= (LIP["coat"] in ids)
        assert a["Skirt&Dress"] == bool(ids & {LIP["skirt"], LIP["dress"]}) or a["LongCoat"], s.caption
        assert a["Trousers"] <= (LIP["pants"] in ids)
        if a["accessoryMuffler"]:
            assert LIP["scarf"] in ids
        if a["Front"] and a["accessorySunglasses"]:
            assert LIP["sunglasses"] in ids


def test_keypoints_inside_image_and_on_the_body(samples):
    for s in samples:
        h, w = s.image.shape[:2]
        k = s.keypoints133
        assert k.shape == (133, 3) and s.keypoints17.shape == (17, 3) and k.dtype == np.float32
        assert np.array_equal(s.keypoints17, k[:17])
        assert set(np.unique(k[:, 2]).tolist()) <= {0.0, 1.0, 2.0}
        on = k[:, 2] > 0
        assert on[:17].sum() >= 8  # a person crop shows most of the body
        assert (
            (k[on, 0] >= 0).all() and (k[on, 0] < w).all() and (k[on, 1] >= 0).all() and (k[on, 1] < h).all()
        )
        assert (k[~on, :2] == 0).all()  # COCO: unlabelled points are (0, 0, 0)
        x, y, bw, bh = s.bbox
        vis = k[k[:, 2] == 2]
        assert (vis[:, 0] >= x - 3).all() and (vis[:, 0] <= x + bw + 3).all()
        assert (vis[:, 1] >= y - 3).all() and (vis[:, 1] <= y + bh + 3).all()
        # Back views do not label the face; front views do.
        if s.attributes["Back"]:
            assert (k[23:91, 2] == 0).all() and k[0, 2] == 0
        if s.attributes["Front"]:
            assert (k[23:91, 2] > 0).sum() > 50


def test_part_mask_ids_and_consistency_with_keypoints(samples):
    checked = 0
    for s in samples:
        m = s.part_mask
        assert m.dtype == np.uint8 and m.shape == s.image.shape[:2] and m.max() < len(LIP_CLASSES)
        x, y, bw, bh = mask_box(m > 0)  # labelled parts lie inside the person box (bags are unlabelled)
        bx, by, bbw, bbh = s.bbox
        assert bx <= x and by <= y and x + bw <= bx + bbw and y + bh <= by + bbh
        nose = s.keypoints17[0]
        if nose[2] == 2:
            x, y = int(nose[0]), int(nose[1])
            patch = m[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
            assert LIP["face"] in patch, s.caption
            checked += 1
        for side, ank in (("left", 15), ("right", 16)):
            kp = s.keypoints17[ank]
            if kp[2] == 2:
                x, y = int(kp[0]), int(kp[1])
                patch = set(m[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].ravel().tolist())
                allowed = {LIP[f"{side}-shoe"], LIP[f"{side}-leg"], LIP["pants"], LIP["socks"]}
                assert patch & allowed, (side, patch)
    assert checked >= 5


def test_left_and_right_are_the_persons_own(samples):
    """A visible wrist lies on its own arm (skin, glove or sleeve), never on the other arm's skin."""
    sleeve = {LIP["upper-clothes"], LIP["coat"], LIP["dress"], LIP["glove"], 0}
    seen = 0
    for s in samples:
        for idx, own, other in ((9, "left-arm", "right-arm"), (10, "right-arm", "left-arm")):
            x, y, v = s.keypoints17[idx]
            if v != 2:
                continue
            label = int(s.part_mask[int(y), int(x)])
            assert label in sleeve | {LIP[own]} and label != LIP[other], (idx, label)
            seen += label == LIP[own]
    assert seen >= 5


def test_caption_names_what_is_worn(world, samples):
    for s in samples:
        app = world.identity(s.pid).appearance
        assert s.caption.endswith(".") and len(s.caption.split()) >= 10
        assert app["upper"]["colour"]["name"] in s.caption
        assert re.search(r"\b(she|her|woman|lady|girl)\b", s.caption, re.I) or not s.attributes["Female"]
    assert len({s.caption for s in samples}) > 30


def test_world_pickles_to_loader_workers():
    import pickle

    w = SynthWorld(2)
    clone = pickle.loads(pickle.dumps(w))
    assert len(pickle.dumps(w)) < 1000  # only the seed travels
    a = w.render_person(w.identity(1), 1, size=(64, 32), rng=np.random.default_rng(0))
    b = clone.render_person(clone.identity(1), 1, size=(64, 32), rng=np.random.default_rng(0))
    assert np.array_equal(a.image, b.image)

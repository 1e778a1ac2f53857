import numpy as np
import pytest

from saip_bench.synth import LIP_CLASSES, SynthWorld, mask_box


@pytest.fixture(scope="module")
def scenes():
    world = SynthWorld(1)
    return [world.render_scene(n, size=(192, 256), rng=np.random.default_rng(n)) for n in (2, 8, 20)]


def _inside(inner, outer, tol=1.0):
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return x >= ox - tol and y >= oy - tol and x + w <= ox + ow + tol and y + h <= oy + oh + tol


def test_scene_shapes_and_masks(scenes):
    for sc in scenes:
        h, w = sc.image.shape[:2]
        assert sc.image.dtype == np.uint8 and sc.part_mask.shape == (h, w) == sc.instance_ids.shape
        assert sc.part_mask.max() < len(LIP_CLASSES)
        assert set(np.unique(sc.instance_ids).tolist()) <= set(range(len(sc.persons) + 1))
        assert (sc.instance_ids[sc.part_mask > 0] > 0).all()  # parts only on people
        for x, y, bw, bh in sc.ignore_boxes:
            assert x >= 0 and y >= 0 and x + bw <= w + 1 and y + bh <= h + 1


def test_scene_boxes_contain_visible_masks(scenes):
    total = 0
    for sc in scenes:
        h, w = sc.image.shape[:2]
        for i, p in enumerate(sc.persons):
            total += 1
            assert p.instance_mask.dtype == bool and p.instance_mask.any()
            assert np.array_equal(p.instance_mask, sc.instance_ids == i + 1)
            assert mask_box(p.instance_mask) == p.visible_box
            assert _inside(p.visible_box, p.full_box)
            assert 0.0 <= p.occlusion <= 1.0
            assert _inside(p.head_box, p.full_box, tol=0.15 * p.full_box[3] + 2)
            k = p.keypoints133
            on = k[:, 2] > 0
            assert (
                (k[on, 0] >= 0).all()
                and (k[on, 0] < w).all()
                and (k[on, 1] >= 0).all()
                and (k[on, 1] < h).all()
            )
            # A visible keypoint lies on its own person (or on background just beside its outline).
            vis = k[k[:, 2] == 2]
            inst = sc.instance_ids[vis[:, 1].astype(int), vis[:, 0].astype(int)]
            assert np.isin(inst, (0, i + 1)).all()
    assert total >= 10


def test_crowded_scene_has_occlusion(scenes):
    crowded = scenes[-1]
    assert len(crowded.persons) >= 8
    assert max(p.occlusion for p in crowded.persons) > 0.3
    assert any((p.keypoints17[:, 2] == 1).any() for p in crowded.persons)

"""COCO-WholeBody v1.0: where its files are; read and checked by :class:`CocoPoseFormat`.

Layout (``coco_wholebody/``)::

    annotations/coco_wholebody_train_v1.0.json
    annotations/coco_wholebody_val_v1.0.json
    train2017/000000000009.jpg ...
    val2017/000000000139.jpg ...

Each annotation is a COCO person record plus ``foot_kpts`` (6), ``face_kpts`` (68), ``lefthand_kpts`` (21)
and ``righthand_kpts`` (21): 133 keypoints in the order body, feet, face, left hand, right hand. Read it
through the registry: ``DATASETS.get("coco_wholebody").load(root, "val")`` (``FORMAT.load``).
"""

from __future__ import annotations

from saip_bench.tasks.pose.data.coco_format import CocoPoseFormat
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS

FOLDER = "coco_wholebody"
PARTS = tuple((key, count) for _, count, key in WHOLEBODY_PARTS)
FORMAT = CocoPoseFormat.of("coco_wholebody", "annotations/coco_wholebody_{}_v1.0.json", PARTS)

"""COCO-Keypoints (person keypoints 2017): where its files are; read and checked by :class:`CocoPoseFormat`.

Layout (``coco/``)::

    annotations/person_keypoints_train2017.json
    annotations/person_keypoints_val2017.json
    train2017/000000000009.jpg ...
    val2017/000000000139.jpg ...

Each annotation carries the 17 COCO keypoints; see :mod:`saip_bench.tasks.pose.data.coco_format`. Read it
through the registry: ``DATASETS.get("coco_keypoints").load(root, "val")`` (``FORMAT.load``).
"""

from __future__ import annotations

from saip_bench.tasks.pose.data.coco_format import CocoPoseFormat

FOLDER = "coco"
FORMAT = CocoPoseFormat.of("coco_keypoints", "annotations/person_keypoints_{}2017.json", (("keypoints", 17),))

"""Pose datasets: COCO-Keypoints and COCO-WholeBody share one COCO json reader (:mod:`.coco_format`).

Read a split through the registry: ``DATASETS.get("coco_keypoints").load(root, "val") -> PoseSplit``.
"""

from saip_bench.tasks.pose.data.coco_format import PoseInstance, PoseSplit

__all__ = ["PoseInstance", "PoseSplit"]

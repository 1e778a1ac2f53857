"""Pose datasets: COCO-Keypoints and COCO-WholeBody share one COCO json reader (:mod:`.coco_format`)."""

from __future__ import annotations

from pathlib import Path

from saip_bench.tasks.pose.data.coco_format import PoseInstance, PoseSplit


def load_pose_split(dataset: str, root: str | Path, split: str) -> PoseSplit:
    """The ``split`` (``"train"``/``"val"``) of ``dataset`` (``coco_keypoints``/``coco_wholebody``)."""
    from saip_bench.tasks.pose.data import coco_keypoints, coco_wholebody

    modules = {"coco_keypoints": coco_keypoints, "coco_wholebody": coco_wholebody}
    if dataset not in modules:
        raise KeyError(f"unknown pose dataset {dataset!r}; valid: {', '.join(modules)}")
    return modules[dataset].load(root, split)


__all__ = ["PoseInstance", "PoseSplit", "load_pose_split"]

"""Procedural synthetic human data: identities seen by several cameras, and multi-person scenes.

``SynthWorld(seed)`` draws people with PIL/numpy (body parts, skin, hair, clothes and their patterns, hats,
glasses, bags, walking poses, front/side/back views) on varied backgrounds, with every task's ground truth:
identity, camera, PA-100K and PETA attributes, COCO-17 and COCO-WholeBody-133 keypoints, LIP part masks,
person / visible / head boxes, instance masks and a caption. Dataset writers turn these records into the real
on-disk formats.
"""

from saip_bench.synth.attributes import PA100K_ATTRIBUTES, PETA_ATTRIBUTES, VIEW_ATTRIBUTES
from saip_bench.synth.caption import describe
from saip_bench.synth.skeleton import WHOLEBODY_PARTS
from saip_bench.synth.types import (
    CIHP_CLASSES,
    COCO17,
    LIP_CLASSES,
    Identity,
    PersonSample,
    ScenePerson,
    SceneSample,
)
from saip_bench.synth.world import SynthWorld, mask_box

__all__ = [
    "CIHP_CLASSES", "COCO17", "LIP_CLASSES", "PA100K_ATTRIBUTES", "PETA_ATTRIBUTES", "VIEW_ATTRIBUTES",
    "WHOLEBODY_PARTS", "Identity", "PersonSample", "ScenePerson", "SceneSample", "SynthWorld", "describe",
    "mask_box",
]  # fmt: skip

"""Synthetic CrowdHuman: crowded scenes with occlusion and ignore regions, in the real ``.odgt`` layout.

Writer only: the reader (:mod:`.crowdhuman`) imports nothing from here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.dataset_spec import SynthOptions
from saip_bench.io import atomic_path
from saip_bench.synth.files import jpeg_bytes
from saip_bench.tasks.detection.data.crowdhuman import IMAGE_DIR, PERSON, annotation_path

log = logging.getLogger(__name__)

#: Persons drawn per scene (CrowdHuman averages about 23 per image; hidden ones are dropped by the renderer).
SYNTH_PERSONS = (10, 30)
#: Scene heights; widths are 1.25-1.5x, like CrowdHuman's mostly landscape photos.
SYNTH_HEIGHTS = (208, 272)
#: Persons hidden beyond this fraction are labelled ``extra.ignore = 1``, like CrowdHuman's unsure boxes.
SYNTH_IGNORE_OCCLUSION = 0.95


def _int_box(box: tuple[float, float, float, float]) -> list[int]:
    return [int(round(v)) for v in box]


def _scene_record(image_id: str, scene: Any) -> dict[str, Any]:
    gtboxes: list[dict[str, Any]] = []
    for i, person in enumerate(scene.persons):
        hidden = person.occlusion > SYNTH_IGNORE_OCCLUSION
        gtboxes.append(
            {
                "tag": PERSON,
                "fbox": _int_box(person.full_box),
                "vbox": _int_box(person.visible_box),
                "hbox": _int_box(person.head_box),
                "extra": {"box_id": i, "occ": int(person.occlusion > 0.0), "ignore": int(hidden)},
                "head_attr": {"ignore": int(hidden), "occ": 0, "unsure": 0},
            }
        )
    for box in scene.ignore_boxes:
        xywh = _int_box(box)
        gtboxes.append(
            {
                "tag": "mask",
                "fbox": xywh,
                "vbox": xywh,
                "hbox": xywh,
                "extra": {"box_id": len(gtboxes), "ignore": 1},
                "head_attr": {},
            }
        )
    return {"ID": image_id, "gtboxes": gtboxes}


def write_crowdhuman(out: Path, options: SynthOptions) -> None:
    """Write a synthetic CrowdHuman folder ``out``: ``options.images`` crowded scenes over train and val (a
    quarter, at least one, go to val). Every scene draws new people (``ids`` is unused); the same seed writes
    the same files."""
    from saip_bench.synth import SynthWorld

    seed = options.seed
    image_dir = out / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    world = SynthWorld(seed)
    rng = np.random.default_rng([seed, 7])
    total = max(2, int(options.images))
    n_val = max(1, total // 4)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for index in range(total):
        split = "val" if index >= total - n_val else "train"
        height = int(rng.integers(SYNTH_HEIGHTS[0], SYNTH_HEIGHTS[1] + 1))
        width = int(height * float(rng.uniform(1.25, 1.5)))
        n_persons = int(rng.integers(SYNTH_PERSONS[0], SYNTH_PERSONS[1] + 1))
        scene = world.render_scene(
            n_persons, size=(height, width), rng=np.random.default_rng([seed, 11, index])
        )
        image_id = f"{seed % 1000000:06d},{index:015x}"
        with atomic_path(image_dir / f"{image_id}.jpg") as tmp:
            tmp.write_bytes(jpeg_bytes(scene.image, quality=90))
        lines[split].append(json.dumps(_scene_record(image_id, scene), separators=(", ", ": ")))
    for split, rows in lines.items():
        with atomic_path(annotation_path(out, split)) as tmp:
            tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    log.debug("wrote %d synthetic CrowdHuman images to %s", total, out)

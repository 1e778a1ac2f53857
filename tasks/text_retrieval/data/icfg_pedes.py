"""ICFG-PEDES: ``imgs/{train,test}/`` + ``ICFG-PEDES.json``; splits train / test, identity ids from 0.

Real ``file_path`` values look like ``test/0027/0027_010_01_0303morning_0015_0.jpg`` (relative to
``imgs/``), one caption per image. The synthetic writer (:mod:`.synth`) keeps that shape.
Read it through the registry: ``DATASETS.get("icfg_pedes").load(root)`` (``FORMAT.load``).
"""

from __future__ import annotations

from saip_bench.tasks.text_retrieval.data.common import PedesFormat

FOLDER = "ICFG-PEDES"
FORMAT = PedesFormat("ICFG-PEDES", "ICFG-PEDES.json", ("train", "test"), first_id=0, captions_per_image=1)

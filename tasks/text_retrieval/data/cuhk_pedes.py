"""CUHK-PEDES: ``imgs/`` + ``reid_raw.json``; splits train / val / test, identity ids from 1.

Real ``file_path`` values look like ``CUHK01/0363004.png`` or ``train_query/p8130_s10987.jpg`` (relative to
``imgs/``); most images carry two captions. The synthetic writer (:mod:`.synth`) keeps that shape.
Read it through the registry: ``DATASETS.get("cuhk_pedes").load(root)`` (``FORMAT.load``).
"""

from __future__ import annotations

from saip_bench.tasks.text_retrieval.data.common import PedesFormat

FOLDER = "CUHK-PEDES"
FORMAT = PedesFormat(
    "CUHK-PEDES", "reid_raw.json", ("train", "val", "test"), first_id=1, captions_per_image=2
)

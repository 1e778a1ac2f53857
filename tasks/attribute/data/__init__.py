"""Attribute dataset formats: PA-100K (:mod:`.pa100k`), PETA-zs (:mod:`.peta_zs`); writers: :mod:`.synth`.

Read a dataset through the registry: ``DATASETS.get("pa100k").load(root) -> AttributeSet``.
"""

from saip_bench.tasks.attribute.data.common import AttributeSet

__all__ = ["AttributeSet"]

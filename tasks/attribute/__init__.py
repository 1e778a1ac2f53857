"""Pedestrian attribute recognition (PA-100K, PETA-zs): loaders, linear head, weighted BCE, mA metrics.

Importing this package registers nothing by itself; the evaluation protocol registry imports
:mod:`saip_bench.tasks.attribute.adapter` to reach the task adapter.
"""

"""Evaluation recipes (YAML), one per dataset and input size: see saip_bench.evaluate.protocols."""

"""Benchmark campaigns: a YAML file of backbones x datasets x protocols x seeds, planned, run and followed."""

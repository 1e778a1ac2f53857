"""The Slurm tests share one real cluster per session (:mod:`tests.slurm_cluster`)."""

from tests.slurm_cluster import slurm_cluster  # noqa: F401

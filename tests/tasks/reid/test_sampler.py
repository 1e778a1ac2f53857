"""The identity-balanced P x K sampler."""

from __future__ import annotations

from collections import Counter

import pytest

from saip_bench.errors import ConfigError
from saip_bench.tasks.reid.sampler import PKSampler

PIDS = [pid for pid in range(10) for _ in range(3 + pid % 4)] + [10]  # id 10 has a single image


def test_batches_hold_p_identities_with_k_images_each() -> None:
    sampler = PKSampler(PIDS, p=4, k=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        assert len(batch) == 8
        counts = Counter(PIDS[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {2}


def test_deterministic_per_epoch_and_reshuffled_across_epochs() -> None:
    a, b = PKSampler(PIDS, p=4, k=2, seed=3), PKSampler(PIDS, p=4, k=2, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_identity_with_fewer_than_k_images_is_topped_up() -> None:
    sampler = PKSampler([0, 1, 1, 1, 1], p=2, k=4, seed=0)
    batch = next(iter(sampler))
    assert Counter(0 if i == 0 else 1 for i in batch) == {0: 4, 1: 4}


def test_replicas_split_the_batches() -> None:
    whole = PKSampler(PIDS, p=2, k=2, seed=0)
    parts = [PKSampler(PIDS, p=2, k=2, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(whole) // 2
    assert list(parts[0]) + list(parts[1]) != []


def test_too_few_identities_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="identities"):
        PKSampler([0, 0, 1, 1], p=4, k=2)

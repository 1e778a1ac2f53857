"""Identity-balanced P x K batch sampler: every batch holds P identities with K images each.

Why: the batch-hard triplet loss needs positives and negatives inside every batch. Each identity's images are
shuffled into chunks of K (an identity with fewer than K images is topped up by drawing with replacement); a
batch takes one chunk from each of P distinct identities that still have chunks, so an epoch sees every image
about once. When fewer than P identities have chunks left, the exhausted ones are reshuffled and reused, which
keeps the number of batches per epoch fixed (``len``) and known in advance.

An epoch's batches are a pure function of ``(seed, epoch)``, and :meth:`PKSampler.set_start` begins an epoch
at any batch (the skipped batches are drawn but not yielded, so no image is loaded for them): a fine-tune
interrupted mid-epoch resumes at the same batch with the same identities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from saip_bench.errors import ConfigError


class PKSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of ``p * k`` dataset indices (``DataLoader(batch_sampler=...)``).

    Args:
        pids: the training label of each dataset item (any hashable ids).
        p: identities per batch.
        k: images per identity.
        seed: base seed; each epoch uses ``seed + epoch`` (call :meth:`set_epoch`).
        num_replicas: data-parallel world size; each replica gets every ``num_replicas``-th batch.
        rank: this replica's rank.
    """

    def __init__(
        self, pids: Sequence[int], *, p: int, k: int, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        if p < 2 or k < 1:
            raise ConfigError(f"P x K sampler needs P >= 2 and K >= 1, got P={p}, K={k}")
        self.by_pid: dict[int, list[int]] = {}
        for index, pid in enumerate(pids):
            self.by_pid.setdefault(int(pid), []).append(index)
        if len(self.by_pid) < p:
            raise ConfigError(
                f"P x K sampler: P={p} identities per batch but the data has {len(self.by_pid)}"
            )
        self.p, self.k, self.seed = p, k, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.start = 0
        chunks = sum(max(1, len(v) // k) for v in self.by_pid.values())
        self._batches = max(1, chunks // p // num_replicas) * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch`` (the engine calls this at the start of every epoch)."""
        self.epoch = epoch

    def set_start(self, batch: int) -> None:
        """Begin the next iterations at this replica's batch ``batch`` of the epoch (0: the whole epoch)."""
        self.start = int(batch)

    def __len__(self) -> int:
        return self._batches // self.num_replicas

    def _chunks(self, rng: np.random.Generator, pid: int) -> list[list[int]]:
        items = self.by_pid[pid]
        if len(items) < self.k:
            order = rng.choice(items, size=self.k, replace=True).tolist()
        else:
            order = rng.permutation(items).tolist()
        return [order[i : i + self.k] for i in range(0, len(order) - self.k + 1, self.k)]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        pids = sorted(self.by_pid)
        remaining = {pid: self._chunks(rng, pid) for pid in pids}
        skip = self.start
        for batch_index in range(self._batches):
            avail = [pid for pid in pids if remaining[pid]]
            if len(avail) < self.p:
                for pid in pids:
                    if not remaining[pid]:
                        remaining[pid] = self._chunks(rng, pid)
                avail = pids
            chosen = rng.choice(len(avail), size=self.p, replace=False)
            batch = [i for c in chosen for i in remaining[avail[c]].pop()]
            if batch_index % self.num_replicas != self.rank:
                continue
            if skip > 0:  # drawn like every batch, so the ones after it are the same
                skip -= 1
                continue
            yield batch

"""Resumable training order and per-sample augmentation seeds: what makes a resumed fine-tune exact.

Two things decide which pixels a training step sees: the order of the samples and the random augmentation
of each. For a run interrupted at batch ``k`` of epoch ``e`` to continue exactly, both must be pure
functions of the run's seed and the sample's place in the run, not of how much the process did before:

- **Order.** :class:`EpochSampler` draws epoch ``e``'s permutation from ``(seed, e)`` alone (numpy's
  ``SeedSequence`` mixes the two, so seed 0 epoch 1 is not seed 1 epoch 0) and can start at batch ``k``
  without touching the skipped samples. Under DDP each rank takes every ``num_replicas``-th sample of that
  permutation (as ``DistributedSampler`` does), so the ranks agree without talking. A task's own batch sampler
  (the re-ID ``PKSampler``) resumes the same way through ``set_epoch`` / ``set_start``.
- **Augmentation.** A DataLoader worker's RNG advances with every sample it produces, so which worker loads a
  sample, and how many it loaded before, changes its flip or crop. Here every sample carries a seed derived
  from ``(seed, epoch, position in the epoch)``; :class:`SeededSamples` seeds torch's CPU generator, numpy's
  and python's global RNG with it around the dataset's ``__getitem__`` and restores them afterwards, so the
  augmentation is the same with 0 or 8 workers, after a resume, and the main process's RNG (dropout) is
  untouched. A sample drawn twice in one epoch (P x K top-up) gets two different seeds: its positions differ.

The samplers yield :class:`SampleKey` ``(index, seed)`` pairs, which only :class:`SeededSamples` understands;
:func:`saip_bench.engine.make_train_loader` puts the two together.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator, Sized
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

#: Mixed into the sample-seed stream so it never equals the order stream of the same ``(seed, epoch)``.
_SAMPLE_STREAM = 0x5A1B
_ORDER_STREAM = 0x0DE5


class SampleKey(NamedTuple):
    """What a resumable sampler yields for one sample: the dataset index and its augmentation seed."""

    index: int
    seed: int


@runtime_checkable
class Resumable(Protocol):
    """A (batch) sampler whose epoch is a pure function of ``(seed, epoch)`` and that can start mid-epoch."""

    def set_epoch(self, epoch: int) -> None: ...

    def set_start(self, batch: int) -> None: ...


def sample_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """``count`` augmentation seeds of one epoch, one per position: a pure function of its arguments."""
    rng = np.random.default_rng([int(seed), int(epoch), _SAMPLE_STREAM])
    return rng.integers(0, 2**63 - 1, size=count, dtype=np.int64)


class EpochSampler(Sampler[SampleKey]):
    """Shuffled sample order that is a pure function of ``(seed, epoch)`` and resumes at a batch.

    Args:
        size: the dataset's length.
        batch_size: the loader's batch size (a start position is given in batches).
        seed: the run's seed.
        num_replicas: the DDP world size: each rank takes every ``num_replicas``-th sample of the epoch's
            permutation (the tail that does not divide evenly is dropped, as ``DistributedSampler`` with
            ``drop_last=True`` does).
        rank: this process's rank.
    """

    def __init__(
        self, size: int, *, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.size, self.batch_size, self.seed = int(size), int(batch_size), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order (the engine calls this before every epoch)."""
        self.epoch = int(epoch)

    def set_start(self, batch: int) -> None:
        """Begin the next iterations at batch ``batch`` of the epoch (0: the whole epoch)."""
        self.start = int(batch)

    def order(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s permutation of ``range(size)`` (all ranks)."""
        return np.random.default_rng([self.seed, int(epoch), _ORDER_STREAM]).permutation(self.size)

    def __len__(self) -> int:
        return self.size // self.num_replicas

    def __iter__(self) -> Iterator[SampleKey]:
        total = len(self) * self.num_replicas
        order = self.order(self.epoch)[:total]
        seeds = sample_seeds(self.seed, self.epoch, total)
        first = self.start * self.batch_size * self.num_replicas + self.rank
        for position in range(first, total, self.num_replicas):
            yield SampleKey(int(order[position]), int(seeds[position]))


class SeededBatches(Sampler[list[SampleKey]]):
    """A task's resumable batch sampler (yielding index lists) with a seed for every sample it yields.

    Slot ``j`` of batch ``b`` gets a seed from ``(seed, epoch, rank, b, j)``, so the seeds survive a resume
    at batch ``k``.

    Args:
        batch_sampler: yields lists of dataset indices, with a fixed ``len`` and ``set_epoch`` / ``set_start``
            (see :class:`Resumable`).
        seed: the run's seed.
        rank: this process's rank (each rank's batches get their own seeds).

    Raises:
        TypeError: ``batch_sampler`` cannot resume (no ``set_epoch`` / ``set_start``).
    """

    def __init__(self, batch_sampler: Any, *, seed: int, rank: int = 0) -> None:
        if not isinstance(batch_sampler, Resumable):
            raise TypeError(f"{type(batch_sampler).__name__} has no set_epoch/set_start: it cannot resume")
        self.batch_sampler = batch_sampler
        self.seed, self.rank = int(seed), int(rank)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler."""
        self.epoch = int(epoch)
        self.batch_sampler.set_epoch(epoch)

    def set_start(self, batch: int) -> None:
        """Forward the start batch to the wrapped sampler."""
        self.start = int(batch)
        self.batch_sampler.set_start(batch)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for b, batch in enumerate(self.batch_sampler, start=self.start):
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, b, _SAMPLE_STREAM])
            seeds = rng.integers(0, 2**63 - 1, size=len(batch), dtype=np.int64)
            yield [SampleKey(int(i), int(s)) for i, s in zip(batch, seeds, strict=True)]


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker ignores SIGTERM/SIGINT and leaves the stop to the main process.

    Slurm signals every process of a job and Ctrl-C the whole process group; a worker dying on it would turn
    the graceful stop (finish the step, save, :class:`~saip_bench.errors.Interrupted`) into a "DataLoader
    worker exited unexpectedly" crash. The main process still ends its workers when it stops.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SeededSamples(Dataset):
    """A dataset whose random augmentation depends only on the seed each :class:`SampleKey` carries.

    ``dataset[SampleKey(i, s)]`` seeds torch's CPU generator, numpy's and python's global RNG with ``s``,
    returns ``dataset[i]`` and puts the three generators back as they were (in the main process that keeps
    dropout's stream apart from augmentation; in a worker it makes the sample independent of the worker).
    A plain integer index passes through unseeded.

    Args:
        dataset: the training set (map-style).
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset) if isinstance(self.dataset, Sized) else 0

    def __getitem__(self, key: SampleKey | int) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        torch_state = torch.get_rng_state()
        numpy_state = np.random.get_state()
        python_state = random.getstate()
        try:
            # The CPU generator only: torch.manual_seed would also reseed (and so disturb) every CUDA stream.
            torch.default_generator.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            random.seed(int(seed))
            return self.dataset[int(index)]
        finally:
            torch.set_rng_state(torch_state)
            np.random.set_state(numpy_state)
            random.setstate(python_state)

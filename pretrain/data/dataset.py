"""The pretraining dataset: person crops from a LUP-format folder, each turned into the method's views.

Every sample is a pure function of ``(seed, epoch, index)``: the sampler yields ``(epoch, index)`` pairs and
the views draw from :func:`saip_bench.pretrain.views.sample_rng`, so the data a step sees does not depend on
the number of loader workers, on the process that came before a resume, or on global RNG state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from saip_bench.engine.sampling import ignore_stop_signals
from saip_bench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)


class PretrainDataset(Dataset):
    """Images of ``root`` (a LUP folder) -> view dicts.

    Args:
        paths: The image files.
        views: ``views(img, rng) -> dict`` (a :class:`saip_bench.pretrain.views.SaipViews`); ``img`` is the
            decoded ``(3, H, W)`` ``uint8`` tensor (:func:`saip_bench.pretrain.image_ops.read_image`).
        seed: Seeds every sample's generator together with (epoch, index).
    """

    def __init__(self, paths: list[Path], views: Callable, *, seed: int = 0) -> None:
        self.paths = list(paths)
        self.views = views
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The views of image ``index`` in ``epoch``; ``key = (epoch, index)``.

        Raises:
            DataFormatError: naming the file, when it is not a readable image.
        """
        from saip_bench.pretrain.image_ops import read_image
        from saip_bench.pretrain.views import sample_rng

        epoch, index = key
        return self.views(read_image(self.paths[index]), sample_rng(self.seed, epoch, index))

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """The samples of ``keys``, what a data loader asks for one batch.

        With views that can (:meth:`saip_bench.pretrain.views.SaipViews.make_batch`), they are made straight
        into the batch's tensors, which :func:`saip_bench.pretrain.views.collate_views` then hands on without
        a copy; the samples are the same as ``[self[k] for k in keys]``.
        """
        from saip_bench.pretrain.image_ops import read_image
        from saip_bench.pretrain.views import sample_rng

        make_batch = getattr(self.views, "make_batch", None)
        if make_batch is None:
            return [self[k] for k in keys]
        items = ((read_image(self.paths[i]), sample_rng(self.seed, e, i)) for e, i in keys)
        return make_batch(len(keys), items)

    @classmethod
    def from_config(cls, root: Path, cfg, *, seed: int, spec=None) -> PretrainDataset:
        """Build the dataset and the views the method needs from the pretraining config."""
        from saip_bench.pretrain import methods
        from saip_bench.pretrain.composite import (
            CompositeMaker,
            background_from_folder,
            background_from_sequence,
        )
        from saip_bench.pretrain.data.lup import list_images
        from saip_bench.pretrain.views import OUTPUTS, MultiCropViews, SaipViews

        spec = spec or methods.resolve(cfg.method, cfg.objectives, dict(cfg.loss))
        root = Path(root)
        if not root.is_dir():
            raise DataFormatError(root, "no such folder of pretraining images")
        paths = [Path(p) for p in list_images(root)]
        if not paths:
            raise DataFormatError(root, "holds no images (.jpg person crops expected)")
        v = cfg.views
        n_local = int(v.local_crops) if spec.needs_locals else 0
        if spec.needs_composite and n_local < 2:
            raise ConfigError(f"views.local_crops={n_local}: CSS pastes the last two local views; use >= 2")
        if str(v.output) not in OUTPUTS:
            raise ConfigError(f"views.output={v.output!r}: expected one of {', '.join(OUTPUTS)}")
        multicrop = MultiCropViews(
            global_size=tuple(v.global_size),
            local_size=tuple(v.local_size),
            global_scale=tuple(v.global_scale),
            local_scale=tuple(v.local_scale),
            ratio=tuple(v.ratio),
            local_crops_number=n_local,
            jitter_p=float(v.color_jitter_p),
            grayscale_p=float(v.grayscale_p),
            global_solarize_p=(0.0, float(v.solarize_p)),
            local_blur_p=float(v.local_blur_p),
            output=str(v.output),
        )
        composite = None
        if spec.needs_composite:
            if v.background_dir is not None:
                background = background_from_folder(Path(v.background_dir))
            else:
                background = background_from_sequence(paths)
            composite = CompositeMaker(
                background,
                size=tuple(v.composite_size),
                person_size=tuple(v.local_size),
                alpha=float(v.person_alpha),
            )
        return cls(paths, SaipViews(multicrop, composite), seed=seed)


def rank_indices(n: int, *, epoch: int, seed: int, rank: int, world_size: int) -> list[int]:
    """This rank's shuffled share of ``range(n)`` in ``epoch`` (torch's DistributedSampler, drop_last)."""
    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


class EpochKeys(Sampler):
    """The ``(epoch, index)`` keys of one rank from epoch ``epoch`` on, starting ``skip`` samples in, forever.

    Epoch by epoch, :func:`rank_indices` cut to whole batches (``per_epoch`` batches of ``batch_size``), so
    consecutive groups of ``batch_size`` keys are exactly the micro-batches and none straddles two epochs.
    """

    def __init__(
        self, n: int, *, seed: int, rank: int, world_size: int, batch_size: int, epoch: int, skip: int = 0
    ) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.batch_size, self.epoch, self.skip = batch_size, epoch, skip
        self.per_epoch = n // world_size // batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self.skip
        while True:
            idx = rank_indices(
                self.n, epoch=epoch, seed=self.seed, rank=self.rank, world_size=self.world_size
            )
            for i in idx[skip : self.per_epoch * self.batch_size]:
                yield epoch, i
            epoch, skip = epoch + 1, 0


def micro_batches(
    dataset: PretrainDataset,
    *,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    start: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's micro-batches from global data position ``start`` (micro-batches done) onwards, forever.

    Epoch ``e`` is a fresh shuffle of the dataset split across ranks; incomplete batches are dropped. The
    position ``start`` maps to (epoch, batch within the epoch), so a resumed run continues with exactly the
    batch the interrupted one would have drawn next.

    One loader serves every epoch (its sampler runs on through the epochs), so with ``num_workers > 0`` the
    workers start once and persist across epoch boundaries, each keeping ``prefetch_factor`` batches ready;
    which worker makes a sample changes nothing in it (its draws depend on ``(seed, epoch, index)`` only).
    """
    from saip_bench.pretrain.views import collate_views

    n = len(dataset)
    per_rank = n // world_size
    per_epoch = per_rank // batch_size
    if per_epoch < 1:
        raise DataFormatError(
            Path(dataset.paths[0]).parent if dataset.paths else Path("."),
            f"{n} images are too few for batch size {batch_size} on {world_size} process(es)",
        )
    epoch, offset = divmod(int(start), per_epoch)
    keys = EpochKeys(
        n,
        seed=seed,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        epoch=epoch,
        skip=offset * batch_size,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=keys,
        num_workers=num_workers,
        collate_fn=collate_views,
        drop_last=True,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        # The loader draws its worker base seed from this generator, not from the global torch RNG:
        # otherwise creating a loader at a resume point would shift the model's random stream.
        generator=torch.Generator().manual_seed(seed * 65_537 + epoch),
        worker_init_fn=ignore_stop_signals,  # Ctrl-C reaches the workers too: the main process stops
    )
    yield from loader

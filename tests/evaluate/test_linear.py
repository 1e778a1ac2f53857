"""The shared feature probe: DDP extraction equals one process, the head loop is seeded and trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Dataset

from saip_bench.evaluate.linear import apply_batched, extract_features, save_head, shard_rows, train_head

ROWS = 7  # odd, so the 2-rank split pads its last block


class Images(Dataset):
    """``(image, index)`` pairs of fixed random images (the index shows the order is kept)."""

    def __init__(self, n: int = ROWS) -> None:
        self.images = torch.randn(n, 3, 8, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index


def _model() -> nn.Module:
    """A fixed, left-right asymmetric feature extractor: (B, 3, 8, 4) -> (B, 5)."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 4, 5))


def _extract_on_rank(rank: int, world: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        feats = extract_features(_model(), Images(), device="cpu", batch_size=2, flip=True)
        torch.save(feats, Path(out) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_shard_rows_cover_every_row_once_in_order() -> None:
    blocks = [shard_rows(ROWS, rank, 3) for rank in range(3)]
    assert [len(b) for b in blocks] == [3, 3, 3]
    assert sum(blocks, [])[:ROWS] == list(range(ROWS))


def test_two_gloo_processes_gather_the_features_of_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spawned processes unpickle _extract_on_rank by this module's name (tests.evaluate.test_linear) and
    # take the parent's sys.path: the repository root must be on it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    single = extract_features(_model(), Images(), device="cpu", batch_size=3, flip=True)
    assert single.shape == (ROWS, 5)
    mp.spawn(_extract_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        gathered = torch.load(tmp_path / f"rank{rank}.pt")
        assert gathered.shape == single.shape
        torch.testing.assert_close(gathered, single)


def test_a_loader_is_used_as_given_and_flip_averages_the_mirror() -> None:
    model = _model()
    loader = DataLoader(Images(), batch_size=4)
    plain = extract_features(model, loader, device="cpu")
    mirrored = model(torch.flip(Images().images, dims=[3])).detach()
    torch.testing.assert_close(plain, model(Images().images).detach())
    flipped = extract_features(model, loader, device="cpu", flip=True)
    torch.testing.assert_close(flipped, (plain + mirrored) / 2)
    assert model.training, "the model's mode is restored"
    with pytest.raises(ValueError, match="no images"):
        extract_features(model, Images(0), device="cpu")


def _probe(seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(2))
    targets = (feats[:, :2] > 0).float()
    torch.manual_seed(0)
    head = nn.Linear(6, 2)

    def loss_fn(module: nn.Module, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = module(feats[rows])
        return {"loss": nn.functional.binary_cross_entropy_with_logits(logits, targets[rows])}

    losses = train_head(
        head, loss_fn, len(feats), steps=steps, lr=0.05, weight_decay=0.0, batch_size=8, seed=seed
    )
    return head, losses


def test_train_head_is_seeded_and_learns() -> None:
    head_a, losses_a = _probe(seed=0, steps=60)
    head_b, losses_b = _probe(seed=0, steps=60)
    _, losses_c = _probe(seed=1, steps=60)
    assert losses_a == losses_b and losses_a != losses_c
    assert torch.equal(head_a.weight, head_b.weight) and torch.equal(head_a.bias, head_b.bias)
    assert sum(losses_a[-10:]) < 0.5 * sum(losses_a[:10])
    assert not head_a.training
    untrained, none = _probe(seed=0, steps=0)
    assert none == [] and not torch.equal(untrained.weight, head_a.weight)
    with pytest.raises(ValueError, match="at least 2"):
        train_head(head_a, lambda m, r: m(r), 1, steps=1, lr=0.1, weight_decay=0.0, batch_size=2, seed=0)


def test_apply_batched_and_save_head(tmp_path: Path) -> None:
    head = nn.Linear(3, 2)
    feats = torch.randn(10, 3)
    torch.testing.assert_close(apply_batched(head, feats, device="cpu", batch_size=3), head(feats).detach())
    save_head(tmp_path / "run", "head.pt", head.state_dict(), {"metrics": {"mA": 1.0}})
    assert set(torch.load(tmp_path / "run" / "head.pt")) == {"weight", "bias"}
    assert (tmp_path / "run" / "metrics.json").read_text().count("mA") == 1

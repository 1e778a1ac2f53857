"""The loop's hooks: the engine's own (evaluation, logging, progress, checkpoint) and a caller's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from saip_bench.engine import EngineConfig, Hook, Run, fit, make_train_loader


class _Points(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class _Recorder(Hook):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int, float]] = []
        self.epochs: list[dict[str, float]] = []
        self.closed = False

    def after_step(self, run: Run) -> None:
        self.steps.append((run.step, run.epoch, run.losses["loss"]))

    def after_epoch(self, run: Run, record: dict[str, float]) -> None:
        self.epochs.append(dict(record))

    def close(self) -> None:
        self.closed = True


def _fit(run_dir: Path, hooks: list[Hook]):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    loader = make_train_loader(_Points(), batch_size=4, seed=1, num_workers=0, device="cpu")

    def step(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(m(batch[0]), batch[1])}

    def evaluate(m: nn.Module) -> dict[str, float]:
        x, y = _Points().x, _Points().y
        return {"mse": float(nn.functional.mse_loss(m(x), y))}

    config = EngineConfig(epochs=3, lr=0.05, eval_every=2, log_every=1, checkpoint_every=0)
    result = fit(
        model, loader, step, config=config, run_dir=run_dir, device="cpu", evaluate_fn=evaluate,
        primary_metric="mse", best="min", hooks=hooks, seed=0,
    )  # fmt: skip
    return result, model


def test_a_callers_hook_sees_every_step_and_epoch_and_changes_nothing(tmp_path: Path) -> None:
    recorder = _Recorder()
    with_hook, model_a = _fit(tmp_path / "a", [recorder])
    without, model_b = _fit(tmp_path / "b", [])
    assert [s for s, _, _ in recorder.steps] == list(range(1, 13))  # 3 epochs x 4 batches
    assert [e for _, e, _ in recorder.steps] == [0] * 4 + [1] * 4 + [2] * 4
    # The engine's EvalHook runs first: the epoch rows it evaluated (2 and the last) carry the metric.
    assert ["mse" in row for row in recorder.epochs] == [False, True, True]
    assert recorder.closed
    assert with_hook.metrics == without.metrics
    assert torch.equal(model_a.weight, model_b.weight)


def test_the_engines_hooks_write_the_log_history_and_checkpoint(tmp_path: Path) -> None:
    result, _ = _fit(tmp_path, [])
    log = (tmp_path / "train.log").read_text()
    assert log.count(" step ") == 12 and "eval epoch 2: mse" in log and "eval epoch 3: mse" in log
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3] and "mse" in history[2]
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"], state["step"]) == (3, 0, 12)
    assert result.best_epoch in (2, 3) and result.metrics["mse"] == history[2]["mse"]


def test_weights_that_overflow_are_never_checkpointed(tmp_path: Path) -> None:
    import pytest

    from saip_bench.errors import NonFiniteLossError

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    loader = make_train_loader(_Points(), batch_size=4, seed=1, num_workers=0, device="cpu")

    def step(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = nn.functional.mse_loss(m(batch[0]), batch[1])
        return {"loss": loss * 1e38}  # finite, but its gradient step overflows the weights to inf

    config = EngineConfig(epochs=1, lr=1e30, checkpoint_every=1, amp=False)
    with pytest.raises(NonFiniteLossError, match="weights are not finite after step 1"):
        fit(model, loader, step, config=config, run_dir=tmp_path, device="cpu", seed=0)
    assert not (tmp_path / "last.pt").exists()

"""Training checkpoints hold only tensors and plain values: they load without unpickling code."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from saip_bench.engine import checkpoint as ckpt
from saip_bench.errors import CheckpointError


class _Payload:
    def __reduce__(self):  # what a planted file would do on unpickling
        return (os.system, ("echo pwned",))


def test_rng_states_round_trip_through_a_weights_only_load(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"format_version": ckpt.FORMAT_VERSION, "rng": [ckpt.rng_state()]})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_checkpoint_that_pickles_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format_version": ckpt.FORMAT_VERSION, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        ckpt.load_checkpoint(path)

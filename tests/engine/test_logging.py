"""Training logs that work in files: step lines every N steps, RUN/train.log, TensorBoard, no bar in files."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from saip_bench.engine import TrainLogger
from saip_bench.engine.logging import PROGRESS_LOGGER, format_step_line

LINE = re.compile(
    r"step (\d+)/30 loss 1\.2345 \(csm 0\.4000, csr 0\.8345\) lr 1\.20e-04 12\.3 img/s ETA \d+:\d\d:\d\d$"
)


def _feed(logger: TrainLogger, steps: range) -> None:
    for step in steps:
        logger.step(step, {"loss": 1.2345, "csm": 0.4, "csr": 0.8345}, 1.2e-4, 12.3)


def _step_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if re.search(r" step \d+/", line)]


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Leave the root logger as the test found it (setup_logging replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_step_line_format() -> None:
    line = format_step_line(10, 30, {"loss": 1.2345, "csm": 0.4, "csr": 0.8345}, 1.2e-4, 12.3, 70.0)
    assert line == "step 10/30 loss 1.2345 (csm 0.4000, csr 0.8345) lr 1.20e-04 12.3 img/s ETA 0:01:10"
    assert format_step_line(1, 2, {"loss": 0.5}, 1e-3) == "step 1/2 loss 0.5000 lr 1.00e-03"


def test_a_line_every_log_every_steps_and_at_the_end(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    with TrainLogger(tmp_path, total_steps=30, log_every=7, tensorboard=False, enabled=True) as logger:
        _feed(logger, range(1, 31))
    lines = _step_lines(tmp_path / "train.log")
    steps = [int(LINE.search(line).group(1)) for line in lines]
    assert steps == [7, 14, 21, 28, 30]
    assert [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER] == [
        LINE.search(line).group(0) for line in lines
    ]


def test_train_log_holds_the_runs_records_and_is_appended_on_resume(tmp_path: Path) -> None:
    library = logging.getLogger("saip_bench.engine.test_logging")
    library.setLevel(logging.INFO)
    try:
        with TrainLogger(tmp_path, total_steps=30, log_every=10, tensorboard=False, enabled=True) as logger:
            library.info("resumed from somewhere at step 0")
            _feed(logger, range(1, 11))
        library.info("after the run: not in its log")
        with TrainLogger(tmp_path, total_steps=30, log_every=10, tensorboard=False, enabled=True) as logger:
            logger.start(10)
            _feed(logger, range(11, 31))
    finally:
        library.setLevel(logging.NOTSET)
    text = (tmp_path / "train.log").read_text(encoding="utf-8")
    assert "resumed from somewhere at step 0" in text and "after the run" not in text
    assert [int(LINE.search(line).group(1)) for line in _step_lines(tmp_path / "train.log")] == [10, 20, 30]
    assert not any(isinstance(h, logging.FileHandler) for h in logging.getLogger("saip_bench").handlers)


def test_a_disabled_logger_writes_nothing(tmp_path: Path) -> None:
    with TrainLogger(tmp_path / "run", total_steps=4, log_every=1, enabled=False) as logger:
        _feed(logger, range(1, 5))
    assert not (tmp_path / "run").exists()


def test_tensorboard_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TrainLogger(tmp_path, total_steps=30, log_every=10, enabled=True) as logger:
        for step in range(1, 31):
            logger.step(step, {"loss": 1.0 / step, "ce": 0.5}, 1e-3, 100.0, scalars={"train/momentum": 0.99})
        logger.metrics(30, {"mAP": 41.2}, label="epoch 3")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/loss")] == [10, 20, 30]
    assert events.Scalars("loss/loss")[-1].value == pytest.approx(1.0 / 30)
    assert {"loss/ce", "train/lr", "train/images_per_s", "train/momentum", "eval/mAP"} <= set(
        events.Tags()["scalars"]
    )
    assert "eval epoch 3: mAP 41.20" in (tmp_path / "train.log").read_text(encoding="utf-8")


def test_cli_keeps_step_lines_off_a_terminal_with_a_bar(monkeypatch, root_logging) -> None:
    from saip_bench.cli import common

    assert common.PROGRESS_LOGGER == PROGRESS_LOGGER
    record = logging.LogRecord(PROGRESS_LOGGER, logging.INFO, __file__, 1, "step 1/2", None, None)
    for bars, shown in ((True, False), (False, True)):
        monkeypatch.setattr(common, "draws_bars", lambda bars=bars: bars)
        common.setup_logging(False)
        (handler,) = logging.getLogger().handlers
        assert bool(handler.filter(record)) is shown
        assert common.progress_bar().disable is not bars


def test_pretrain_into_a_file_logs_plain_step_lines(tmp_path: Path) -> None:
    """`saip pretrain ... > out.txt 2>&1`: a fresh process whose stdout is a file, as under Slurm."""
    import numpy as np
    from PIL import Image

    (tmp_path / "LUP").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # person-shaped crops: a block on a background
        img = np.full((96, 48, 3), rng.integers(0, 255, 3), np.uint8)
        img[20:-12, 6:-6] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(tmp_path / "LUP" / f"v{i % 3}_{i:04d}_00.jpg")
    run = tmp_path / "run"
    args = ["pretrain", "--config", "smoke_cpu", "--data", str(tmp_path / "LUP"), "--out", str(run)]
    args += ["--steps", "6", "train.log_every=2", "train.threads=1", "train.checkpoint_every=0"]
    args += ["train.tensorboard=false", "train.batch_size=4", "heads.out_dim=64", "heads.hidden_dim=32"]
    args += ["heads.bottleneck_dim=16", "views.local_crops=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "60"}
    with open(tmp_path / "out.txt", "w") as out:
        code = subprocess.call(
            [sys.executable, "-c", "from saip_bench.cli.app import main; main()", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=600,
        )
    text = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert code == 0, text
    line = r"^\S+ \S+ INFO step (\d)/6 loss \d+\.\d{4} \(.*\) lr \S+ [\d.]+ img/s ETA \S+$"
    steps = re.findall(line, text, re.M)
    assert steps == ["2", "4", "6"], text
    assert "━" not in text  # no progress bar drawn into the file
    assert re.search(r"steps loss \S+ -> \S+; backbone: \S+backbone.safetensors$", text, re.M), text
    logged = [line.split(" ", 2)[2] for line in _step_lines(run / "train.log")]
    assert logged == [line.split(" INFO ", 1)[1] for line in text.splitlines() if " INFO step " in line]

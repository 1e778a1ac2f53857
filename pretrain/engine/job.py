"""Pretraining as a Slurm job (``saip pretrain --launcher slurm``): one task per rank, requeue resumes.

submitit runs :class:`PretrainJob` in every task of the job; each task takes its rank from Slurm's
environment (:func:`~saip_bench.launch.slurm.torch_env_from_slurm`) and joins the process group in
:func:`~saip_bench.pretrain.engine.run.run_pretraining`, as a torchrun worker would. When Slurm requeues the
job (preemption, ``scontrol requeue``, the time limit near), the training loop finishes its step and saves,
and the rerun continues from the run directory's checkpoint (:class:`~saip_bench.launch.slurm.Requeueable`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from saip_bench.launch.slurm import Requeueable, torch_env_from_slurm
from saip_bench.pretrain.engine.run import PretrainResult, run_pretraining
from saip_bench.pretrain.engine.trainer import checkpoint_path

log = logging.getLogger(__name__)


class PretrainJob(Requeueable):
    """The submitit callable of a pretraining job: :func:`run_pretraining` on this task's rank.

    Args:
        cfg: the resolved config (:func:`~saip_bench.pretrain.engine.run.build_config`), built before the
            job is submitted so a bad one is refused at once.
        data: the folder of person crops.
        out: the run directory; the job's Slurm logs are in its ``slurm/`` folder.
        resume: continue ``out``'s checkpoint from the first attempt on (``saip pretrain --resume``).
    """

    def __init__(self, cfg: DictConfig, data: str | Path, out: str | Path, *, resume: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.data = Path(data)
        self.out = Path(out)
        self.resume = resume

    def run(self) -> PretrainResult:
        """Train on this task's rank; a rerun after a requeue resumes from the checkpoint, if there is one."""
        if not logging.getLogger().handlers:  # the job's .out/.err file: plain lines, step lines included
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        os.environ.update(torch_env_from_slurm())
        resume = self.resume or (self.resuming and checkpoint_path(self.out).is_file())
        if self.resuming:
            log.info(
                "requeued: %s", "resuming from the checkpoint" if resume else "no checkpoint, from step 0"
            )
        return run_pretraining(self.cfg, self.data, self.out, resume=resume)

"""The Ray Tune function trainable: one trial = one dmvae Trainer, reporting and checkpointing each epoch.

The trial config Ray passes in holds only the sampled values (dotted RunConfig keys); the rest of the run
config comes from the study. Metrics keep their '/' names (TensorBoard groups on them). Only validation and
training metrics are reported: the test split is never looked at during a search.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from dmvae.training.trainer import Trainer
from tune.study import study_from_dict

CHECKPOINT_FILE = "trainer.pt"


class SearchTrainer(Trainer):
    """A Trainer whose end of training evaluates nothing on the test split and writes no files."""

    def finish(self) -> dict:
        return {"epochs": self.epoch, "best_epoch": self.best_epoch, "val_best_accuracy": self.best_score}


def trial_device() -> str:
    """cuda:0 when Ray gave this trial (part of) a GPU: Ray sets CUDA_VISIBLE_DEVICES to the assigned ones."""
    import ray

    return "cuda:0" if ray.get_gpu_ids() else "cpu"


def trial_threads() -> int:
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    return max(1, int(cpus))


def report_epoch(trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
    """Epoch hook: every metric of the epoch plus best-so-far validation accuracy, and a checkpoint."""
    from ray import tune

    values = {key: float(value) for key, value in metrics.items() if isinstance(value, int | float)}
    best = trainer.best_score
    values["val/best_accuracy"] = best if math.isfinite(best) else 0.0
    every = trainer.config.train.checkpoint_every
    if epoch == trainer.config.train.epochs or (every and epoch % every == 0):
        with tempfile.TemporaryDirectory(prefix="dmvae-ckpt-") as folder:
            trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
            tune.report(values, checkpoint=tune.Checkpoint.from_directory(folder))
    else:
        tune.report(values)


def train_trial(params: dict[str, Any], study: dict[str, Any]) -> None:
    """Run one trial. A TrainingDiverged (NaN loss) or any other error propagates: Ray marks it errored."""
    from ray import tune

    config = study_from_dict(study).trial_config(params)
    config.train.threads = trial_threads()
    trainer = SearchTrainer(config, hooks=[report_epoch], progress=None, device=trial_device())
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.resume(Path(folder) / CHECKPOINT_FILE)
    torch.set_num_threads(config.train.threads)
    trainer.fit()


def make_trainable(study_values: dict[str, Any], resources: dict[str, float]):
    """The trainable handed to Tuner: train_trial with the study bound and the per-trial resources."""
    from ray import tune

    bound = tune.with_parameters(train_trial, study=study_values)
    return tune.with_resources(bound, {"cpu": resources["cpu"], "gpu": resources.get("gpu", 0)})

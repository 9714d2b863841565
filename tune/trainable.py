"""The Ray Tune function trainable: one trial = one dmvae Trainer, reporting and checkpointing each epoch.

The trial config Ray passes in holds only the sampled values (dotted RunConfig keys); the rest of the run
config comes from the study. Metrics keep their '/' names (TensorBoard groups on them). Only validation and
training metrics are reported: the test split is never looked at during a search.

Image grids (cross-synthesis) go to an extra TensorBoard event file in the trial's working directory, which
Ray syncs to the trial folder in the experiment storage (SyncConfig(sync_artifacts=True)); TensorBoard shows
them with the trial's curves. Ray's own TensorBoard logger writes the curves and, when a trial ends, its
hparams (the sampled values with the last metrics).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dmvae.data import load_splits
from dmvae.evaluation.figures import cross_synthesis_grid
from dmvae.training import Trainer
from tune.study import Study, study_from_dict

CHECKPOINT_FILE = "trainer.pt"


def trial_device() -> str:
    """cuda:0 when Ray gave this trial (part of) a GPU: Ray sets CUDA_VISIBLE_DEVICES to the assigned ones."""
    import ray

    return "cuda:0" if ray.get_gpu_ids() else "cpu"


def node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def trial_threads() -> int:
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    return max(1, int(cpus))


def report_epoch(trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
    """Epoch hook: every metric of the epoch plus best-so-far validation accuracy, and a checkpoint."""
    from ray import tune

    values: dict[str, Any] = {
        key: float(value) for key, value in metrics.items() if isinstance(value, int | float)
    }
    best = trainer.best_score
    values["val/best_accuracy"] = best if math.isfinite(best) else 0.0
    values["node_id"] = node_id()  # which Ray node ran the epoch (Ray adds hostname and node_ip itself)
    every = trainer.config.train.checkpoint_every
    if epoch == trainer.config.train.epochs or (every and epoch % every == 0):
        with tempfile.TemporaryDirectory(prefix="dmvae-ckpt-") as folder:
            trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
            tune.report(values, checkpoint=tune.Checkpoint.from_directory(folder))
    else:
        tune.report(values)


def image_epochs(max_epochs: int, grace_period: int, reduction_factor: int, every: int) -> set[int]:
    """Epochs that get an image: every `every`-th, the last, and each ASHA milestone (where ASHA may stop a
    trial: grace_period * reduction_factor**k), so every trial that is not errored ends with an image."""
    epochs = {max_epochs}
    if every:
        epochs |= set(range(every, max_epochs + 1, every))
    milestone = grace_period
    while milestone <= max_epochs:
        epochs.add(milestone)
        milestone *= reduction_factor
    return epochs


class EpochReporter:
    """The trainer's epoch hook: an image grid at the epochs of `image_epochs`, then `report_epoch`."""

    IMAGE_TAG = "cross_synthesis/prior"

    def __init__(self, study: Study, log_dir: str | Path):
        self.image_epochs = image_epochs(
            study.max_epochs, study.grace_period, study.reduction_factor, study.image_every
        )
        self.log_dir = Path(log_dir)
        self.writer = None

    def __call__(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        if epoch in self.image_epochs:
            self.log_images(trainer, epoch)
        report_epoch(trainer, epoch, metrics)  # after the images: the checkpoint's sync carries them

    def log_images(self, trainer: Trainer, epoch: int) -> None:
        grid = cross_synthesis_grid(trainer.scored_model, trainer.source, trainer.target, trainer.device)
        if grid is None:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.log_dir), filename_suffix=".images")
        self.writer.add_image(self.IMAGE_TAG, grid, global_step=epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def train_trial(params: dict[str, Any], study: dict[str, Any]) -> None:
    """Run one trial. A TrainingDiverged (NaN loss) or any other error propagates: Ray marks it errored."""
    from ray import tune

    study_object = study_from_dict(study)
    config = study_object.trial_config(params)
    config.train.threads = trial_threads()
    # Ray runs the trial in its working directory, synced to the trial folder (sync_artifacts).
    reporter = EpochReporter(study_object, os.getcwd())
    # The trial's data is loaded without the test split: a search cannot read it.
    splits = load_splits(config.data, config.seed, progress=lambda message: None, with_test=False)
    trainer = Trainer(config, splits=splits, hooks=[reporter], progress=None, device=trial_device())
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.resume(Path(folder) / CHECKPOINT_FILE)
    torch.set_num_threads(config.train.threads)
    try:
        trainer.fit()
    finally:
        reporter.close()


def make_trainable(study_values: dict[str, Any], resources: dict[str, float]):
    """The trainable handed to Tuner: train_trial with the study bound and the per-trial resources."""
    from ray import tune

    bound = tune.with_parameters(train_trial, study=study_values)
    return tune.with_resources(bound, {"cpu": resources["cpu"], "gpu": resources.get("gpu", 0)})

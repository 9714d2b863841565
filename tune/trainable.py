"""The Ray Tune function trainable: one trial = one dmvae Trainer, reporting and checkpointing each epoch.

The trial config Ray passes in holds only the sampled values (dotted RunConfig keys); the rest of the run
config comes from the study. Metrics keep their '/' names (TensorBoard groups on them). Only validation and
training metrics are reported: the test split is never looked at during a search.

Image grids (cross-synthesis) go to an extra TensorBoard event file in the trial's working directory, which
Ray syncs to the trial folder in the experiment storage (SyncConfig(sync_artifacts=True)); TensorBoard shows
them with the trial's curves. Ray's own TensorBoard logger writes the curves and, when a trial ends, its
hparams (the sampled values with the last metrics).

A study with `data_seeds` trains one trainer per data seed (paired subset) in lockstep (SeedGroup) and
reports the mean of their metrics each epoch, with each seed's validation accuracy beside it; each seed
draws from its own random stream, so it trains exactly as a trial on that seed alone would.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from statistics import fmean
from typing import Any

import torch

from dmvae.data import load_splits
from dmvae.evaluation.figures import cross_synthesis_grid
from dmvae.training import Trainer
from dmvae.training.checkpoint import load_checkpoint, save_checkpoint
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


class SeedGroup:
    """One trainer per data seed, trained epoch by epoch in lockstep; to the reporter it looks like one
    trainer whose metrics (and best validation accuracy) are the means over the seeds, but for `seconds`: the
    group epoch's time, the sum over the seeds that trained in it."""

    def __init__(self, config, seeds: list[int], hooks: list, device: str):
        self.seeds, self.hooks, self.config = seeds, hooks, config
        self.trainers, self.rng_states = [], []
        for seed in seeds:
            seeded = copy.deepcopy(config)
            seeded.seed = seed
            # The trial's data is loaded without the test split: a search cannot read it.
            splits = load_splits(seeded.data, seed, progress=lambda message: None, with_test=False)
            self.trainers.append(Trainer(seeded, splits=splits, progress=None, device=device))
            self.rng_states.append(random_state())
        first = self.trainers[0]  # the image grids show the first seed's model
        self.scored_model, self.device = first.scored_model, first.device
        self.source, self.target = first.source, first.target

    @contextmanager
    def own_stream(self, index: int):
        """Run trainer `index` on its own random stream (torch's global one is shared by all trainers)."""
        set_random_state(self.rng_states[index])
        try:
            yield self.trainers[index]
        finally:
            self.rng_states[index] = random_state()

    @property
    def epoch(self) -> int:
        return max(trainer.epoch for trainer in self.trainers)

    @property
    def best_score(self) -> float:
        return fmean(trainer.best_score for trainer in self.trainers)

    def fit(self) -> None:
        epochs = self.config.train.epochs
        if self.epoch == 0 and self.config.train.restarts > 1:
            for index in range(len(self.trainers)):
                with self.own_stream(index) as trainer:
                    trainer.choose_initialisation()
            for position in range(len(self.trainers[0].history)):
                self.report([trainer.history[position] for trainer in self.trainers])
        while self.epoch < epochs and not all(trainer.out_of_patience() for trainer in self.trainers):
            per_seed = []
            for index, trainer in enumerate(self.trainers):
                if trainer.out_of_patience():  # stopped, as it would alone: its last epoch's metrics stand
                    per_seed.append(trainer.history[-1] | {"seconds": 0.0})
                    continue
                with self.own_stream(index) as trainer:
                    per_seed.append(trainer.run_epoch(last=epochs))
            self.report(per_seed)

    def report(self, per_seed: list[dict[str, Any]]) -> None:
        shared = set.intersection(*(set(metrics) for metrics in per_seed))
        metrics = {
            key: fmean(m[key] for m in per_seed)
            for key in sorted(shared)
            if all(isinstance(m[key], int | float) for m in per_seed)
        }
        if "seconds" in metrics:
            metrics["seconds"] = sum(m["seconds"] for m in per_seed)
        for seed, seed_metrics in zip(self.seeds, per_seed, strict=True):
            if "val/accuracy" in seed_metrics:
                metrics[f"val/accuracy_seed_{seed}"] = seed_metrics["val/accuracy"]
        epoch = max(seed_metrics["epoch"] for seed_metrics in per_seed)
        metrics["epoch"] = epoch
        for hook in self.hooks:
            hook(self, epoch, metrics)

    def save_checkpoint(self, path: str | Path) -> None:
        states = []
        for index in range(len(self.trainers)):
            with self.own_stream(index) as trainer:
                states.append(trainer.state_dict())
        save_checkpoint({"model": None, "seeds": self.seeds, "trainers": states}, path)

    def resume(self, path: str | Path) -> None:
        state = load_checkpoint(path, self.device)
        if state.get("seeds") != self.seeds:
            raise ValueError(f"checkpoint {path} holds data seeds {state.get('seeds')}, not {self.seeds}")
        for index, trainer_state in enumerate(state["trainers"]):
            with self.own_stream(index) as trainer:
                trainer.load_state_dict(trainer_state)


def random_state() -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def set_random_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def train_trial(params: dict[str, Any], study: dict[str, Any]) -> None:
    """Run one trial. A TrainingDiverged (NaN loss) or any other error propagates: Ray marks it errored."""
    from ray import tune

    study_object = study_from_dict(study)
    config = study_object.trial_config(params)
    config.train.threads = trial_threads()
    # Ray runs the trial in its working directory, synced to the trial folder (sync_artifacts).
    reporter = EpochReporter(study_object, os.getcwd())
    seeds = study_object.trial_seeds()
    if len(seeds) > 1:
        trainer = SeedGroup(config, seeds, hooks=[reporter], device=trial_device())
    else:
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

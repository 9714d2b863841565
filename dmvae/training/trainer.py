"""The training loop: one config in, a trained model and its metrics out; the rest is callbacks.

`Trainer.fit` trains epoch by epoch, selects the weights with the best validation accuracy, and calls its
callbacks (progress lines, the run folder, user hooks: dmvae/training/callbacks.py). The test split is
evaluated once, at the end, and only when the splits hold one: a search loads its data without it.
Checkpoints hold the model, the optimiser and every RNG state, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import copy
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dmvae.config import RunConfig
from dmvae.data import DatasetSplits, default_root, load_splits
from dmvae.errors import UserError
from dmvae.evaluation.metrics import default_source_target, evaluate_cross_generation, merged_classes
from dmvae.models import build_model
from dmvae.training.augment import augment_images
from dmvae.training.averaging import WeightAverage
from dmvae.training.callbacks import Callback, EpochHook, Hook, Progress, RunFolder, SharedLatentCheck
from dmvae.training.checkpoint import load_checkpoint, save_checkpoint
from dmvae.training.hardware import (
    compute_description,
    epoch_lr,
    make_optimizer,
    resolve_device,
    resolve_precision,
)
from dmvae.training.schedules import make_schedule

if TYPE_CHECKING:
    from dmvae.evaluation.coherence import CoherenceClassifier


def restart_seed(seed: int, restart: int) -> int:
    """The seed of restart r > 0 of a run with `seed` (train.restarts)."""
    return zlib.crc32(f"{seed}/restart-{restart}".encode())


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path | None = None,
        splits: DatasetSplits | None = None,
        hooks: list[EpochHook] | None = None,
        progress: Callable[[str], None] | None = print,
        device: str | torch.device | None = None,
        callbacks: list[Callback] | None = None,
        coherence_classifier: CoherenceClassifier | None = None,
    ):
        """out_dir adds the RunFolder callback, progress the Progress one, each hook a Hook one.
        coherence_classifier replaces the dataset's cached one (dmvae.evaluation.coherence)."""
        self.config = config
        self.progress = progress
        self.coherence_classifier = coherence_classifier
        self._classifier_looked_up = False
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks: list[Callback] = list(callbacks or [])
        if progress is not None:
            self.callbacks.append(Progress(progress))
        self.callbacks.append(SharedLatentCheck(progress))
        if self.out_dir is not None:
            self.callbacks.append(RunFolder(self.out_dir))
        self.callbacks += [Hook(hook) for hook in hooks or []]
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        torch.manual_seed(config.seed)
        splits = splits if splits is not None else load_splits(config.data, config.seed)
        self.splits = splits.to(self.device)
        self.model = build_model(config, self.splits.specs).to(self.device)
        self.precision = self.model.precision = resolve_precision(
            config.train.precision, self.device, self.model
        )
        if any(isinstance(m, torch.nn.Conv2d) for m in self.model.modules()):
            self.model.to(memory_format=torch.channels_last)
        self.average = WeightAverage(self.model, config.train.ema) if config.train.ema else None
        self._parameters = list(self.model.parameters())
        self._zeros: dict[torch.nn.Parameter, torch.Tensor] = {}
        self.optimizer = make_optimizer(self._parameters, config.train.lr, self.device)
        # Compiled with static shapes: one graph per part shape (paired / image-only batch, a last short
        # batch), each compiled once; the KL weight enters as a tensor so annealing does not recompile.
        self.loss_fn = (
            torch.compile(self.model.loss, dynamic=False) if config.train.compile else self.model.loss
        )
        self.source, self.target = default_source_target(self.model, config.eval.source, config.eval.target)
        self.defaulted_recon_weights = [n for n in self.model.names if n not in config.objective.recon_weight]
        self.config = config = self._resolved(config)
        train = self.splits.train
        self.paired_index, self.unpaired_index = train.paired_index.cpu(), train.unpaired_index.cpu()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.schedule = make_schedule(
            config.train.schedule, self.paired_index, self.unpaired_index,
            config.train.batch_size, config.train.paired_ratio, self.generator,
        )  # fmt: skip
        self.epoch = 0
        self.best_score = float("-inf")
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.history: list[dict] = []
        self.seconds = 0.0
        self.restarts: dict = {}  # with train.restarts > 1: each restart's validation accuracy, the kept one

    def _resolved(self, config: RunConfig) -> RunConfig:
        """The config with every default made explicit (architecture, per-modality values, eval roles)."""
        values = config.to_dict()
        names = self.model.names
        values["model"]["architecture"] = self.model.architecture
        values["model"]["private_dim"] = {n: self.model.private[n].dim for n in names}
        values["objective"]["recon_weight"] = dict(self.model.recon_weight)
        for group in ("beta_private", "beta_shared"):
            values["objective"][group] = {n: float(values["objective"][group].get(n, 1.0)) for n in names}
        values["eval"]["source"], values["eval"]["target"] = self.source, self.target
        return RunConfig.from_dict(values)

    # --- one epoch -----------------------------------------------------------------------------------------
    def kl_weight(self, step: int, steps: int) -> float:
        anneal = self.config.objective.kl_anneal_epochs
        if not anneal:
            return 1.0
        return min(1.0, (self.epoch + step / steps) / anneal)

    def train_epoch(self) -> dict[str, float]:
        config, model, train = self.config, self.model, self.splits.train
        first = model.names[0]
        sizes = {True: len(self.paired_index), False: len(self.unpaired_index)}
        model.train()
        lr = epoch_lr(config.train.lr, config.train.lr_decay, self.epoch, config.train.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        steps = self.schedule.epoch(self.generator)
        for step_number, step in enumerate(steps):
            kl_weight = torch.tensor(self.kl_weight(step_number, len(steps)), device=self.device)
            total = 0.0
            for part in step:
                names = model.names if part.paired else [first]
                batch = train.batch(part.index, names)
                batch = augment_images(batch, model.specs, config.train, self.generator)
                loss, terms = self.loss_fn(batch, sizes[part.paired], kl_weight)
                weight = 1.0 if part.paired else config.objective.unpaired_weight
                total = total + weight * loss
                prefix = "train/paired/" if part.paired else "train/unpaired/"
                for key, value in terms.items():
                    sums[prefix + key] = sums.get(prefix + key, 0.0) + value.detach()
                    counts[prefix + key] = counts.get(prefix + key, 0) + 1
            sums["train/loss"] = sums.get("train/loss", 0.0) + total.detach()
            counts["train/loss"] = step_number + 1
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self._zero_missing_grads()
            self.optimizer.step()
            if self.average is not None:
                self.average.update(model)
        metrics = {key: float(value) / counts[key] for key, value in sums.items()}
        metrics["train/paired_steps"] = counts.get("train/paired/loss", 0)
        metrics["train/lr"] = lr
        if not torch.isfinite(torch.tensor(metrics["train/loss"])):
            raise TrainingDiverged(
                f"training diverged at epoch {self.epoch + 1}: the loss is {metrics['train/loss']}; "
                "lower train.lr or the loss weights"
            )
        return metrics

    def _zero_missing_grads(self) -> None:
        """Zero (not None) gradients keep Adam's momentum moving parameters that a step does not touch (the
        label networks between paired batches), as in the authors' training. Gradients are dropped before
        each backward pass so that the others are written rather than added to zeros; the untouched ones then
        get a shared zero tensor, which Adam only reads."""
        for parameter in self._parameters:
            if parameter.grad is None:
                zero = self._zeros.get(parameter)
                if zero is None:
                    zero = self._zeros[parameter] = torch.zeros_like(parameter)
                parameter.grad = zero

    @property
    def scored_model(self) -> torch.nn.Module:
        """The weights that validation selects and the test scores: their average with train.ema."""
        return self.average.model if self.average is not None else self.model

    def evaluate(self, split: str = "val", per_class: bool = False) -> dict:
        dataset = getattr(self.splits, split)
        if dataset is None:
            raise ValueError(f"these splits were loaded without the {split} split")
        protocol, samples = self.config.eval.protocol, self.config.eval.samples
        return evaluate_cross_generation(
            self.scored_model, dataset, self.source, self.target, protocol, per_class, samples
        )

    # --- the loop ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        config = self.config
        self.prepare_coherence_classifier()  # before training: a corrupt cached classifier stops the run now
        for callback in self.callbacks:
            callback.on_fit_start(self)
        if self.epoch == 0 and config.train.restarts > 1:
            self.choose_initialisation()
            for metrics in self.history:
                for callback in self.callbacks:
                    callback.on_epoch_end(self, metrics["epoch"], metrics)
        while self.epoch < config.train.epochs and not self.out_of_patience():
            metrics = self.run_epoch(last=config.train.epochs)
            for callback in self.callbacks:
                callback.on_epoch_end(self, self.epoch, metrics)
        final = self.finish()
        for callback in self.callbacks:
            callback.on_fit_end(self, final)
        return final

    def run_epoch(self, last: int) -> dict:
        """Train one epoch, validate (every eval.every epochs and at epoch `last`), record its metrics."""
        start = time.perf_counter()
        metrics = self.train_epoch()
        self.epoch += 1
        if self.epoch % self.config.eval.every == 0 or self.epoch == last:
            metrics |= {f"val/{key}": value for key, value in self.select_on_validation().items()}
        seconds = time.perf_counter() - start
        self.seconds += seconds
        metrics |= {
            "epoch": self.epoch, "seconds": seconds, "val/best_accuracy": self.best_score,
            "best_epoch": self.best_epoch,
        }  # fmt: skip
        self.history.append(metrics)
        return metrics

    def choose_initialisation(self) -> None:
        """train.restarts initialisations (restart 0 is the run's own; restart r draws its weights and batch
        order from restart_seed(seed, r)), each trained train.restart_epochs epochs; the run goes on from the
        one with the best validation accuracy. The others' epochs count in `seconds`, not in the history. Each
        restart's merged classes (metrics.merged_classes, at its last epoch) are recorded and shown."""
        train, protocol, samples = self.config.train, self.config.eval.protocol, self.config.eval.samples
        epochs = min(train.restart_epochs, train.epochs)
        start = copy.deepcopy(self.state_dict())
        kept, scores, merges, seconds = None, [], [], 0.0
        for restart in range(train.restarts):
            self.load_state_dict(copy.deepcopy(start))
            if restart:
                seed = restart_seed(self.config.seed, restart)
                torch.manual_seed(seed)
                self.model.load_state_dict(build_model(self.config, self.splits.specs).state_dict())
                self.generator.manual_seed(seed)
            while self.epoch < epochs:
                self.run_epoch(last=epochs)
            seconds += self.seconds
            scores.append(self.best_score)
            merges.append(merged_classes(self.scored_model, self.target, protocol, samples))
            if self.progress is not None:
                self.progress(
                    f"restart {restart}/{train.restarts - 1}: best val acc {self.best_score:.4f} "
                    f"after {epochs} epochs" + "".join(f"; {line}" for line in merges[-1])
                )
            if kept is None or self.best_score > scores[kept[0]]:
                kept = (restart, copy.deepcopy(self.state_dict()))
        self.load_state_dict(kept[1])
        self.seconds = seconds
        self.restarts = {
            "restart_val_accuracy": scores, "restart_merged_classes": merges, "restart_kept": kept[0]
        }  # fmt: skip
        if self.progress is not None:
            self.progress(f"kept restart {kept[0]} (train.restarts); its first {epochs} epochs:")

    def out_of_patience(self) -> bool:
        """train.patience epochs have passed since the best validation accuracy."""
        patience = self.config.train.patience
        return bool(patience) and self.best_state is not None and self.epoch - self.best_epoch >= patience

    def select_on_validation(self) -> dict[str, float]:
        """Validation scores of the current weights; keep them if their accuracy is the best so far."""
        scores = self.evaluate("val")
        if scores["accuracy"] > self.best_score:
            self.best_score, self.best_epoch = scores["accuracy"], self.epoch
            self.best_state = copy.deepcopy(self.scored_model.state_dict())
        return scores

    def finish(self) -> dict:
        """Run totals; with a test split, the test metrics of the best-validation and of the last weights."""
        final = {
            "epochs": self.epoch,
            "seconds": round(self.seconds, 3),
            "seconds_per_epoch": round(self.seconds / max(self.epoch, 1), 3),
            "best_epoch": self.best_epoch,
            "stopped_early": self.epoch < self.config.train.epochs,
            "precision": self.precision,
            "hardware": compute_description(self.device),
            "val_labels": len(self.splits.val),  # the labelled examples model selection looked at
        } | self.restarts
        if self.splits.test is None:
            return final | {"val_best_accuracy": self.best_score}
        final |= {f"test_{key}_last": value for key, value in self.evaluate("test").items()}
        if self.best_state is not None:
            last_state = copy.deepcopy(self.scored_model.state_dict())
            self.scored_model.load_state_dict(self.best_state)
            final |= {f"val_{key}": value for key, value in self.evaluate("val", per_class=True).items()}
            final |= {f"test_{key}": value for key, value in self.evaluate("test").items()}
            final |= self.coherence_scores()
            self.scored_model.load_state_dict(last_state)
        return final

    def prepare_coherence_classifier(self) -> CoherenceClassifier | None:
        """The classifier that scores coherence in this run: the one passed in, else the dataset's cached one
        (trained first when missing); None when eval.coherence is off, the splits hold no test split (a
        search) or the dataset has none (CelebA, npz)."""
        if not self.config.eval.coherence or self.splits.test is None:
            return None
        # Imported here: the coherence module draws its images with the figures module (matplotlib).
        from dmvae.evaluation.coherence import load_or_train_classifier

        if self.coherence_classifier is None and not self._classifier_looked_up:
            self._classifier_looked_up = True
            root = Path(self.config.data.root) if self.config.data.root else default_root()
            progress = self.progress or (lambda message: None)
            found = load_or_train_classifier(self.splits.name, root, progress, device=self.device)
            if found is not None and found.fits(self.model, self.source, self.target):
                self.coherence_classifier = found
        elif self.coherence_classifier is not None and not self.coherence_classifier.fits(
            self.model, self.source, self.target
        ):
            raise ValueError(f"the coherence classifier does not score {self.source} images of {self.target}")
        return self.coherence_classifier

    def coherence_scores(self) -> dict[str, float]:
        """test_coherence of the current weights and the classifier's own test accuracy ({} without one)."""
        classifier = self.prepare_coherence_classifier()
        if classifier is None:
            return {}
        from dmvae.evaluation.coherence import coherence

        samples = self.config.eval.coherence_samples
        return {
            "test_coherence": coherence(self.scored_model, classifier, self.source, self.target, samples),
            "coherence_classifier_accuracy": classifier.test_accuracy,
        }

    # --- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "average": self.average.state_dict() if self.average is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "history": self.history,
            "seconds": self.seconds,
            "restarts": self.restarts,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "generator": self.generator.get_state(),
            "schedule": self.schedule.state_dict(),
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.average is not None:
            if state.get("average") is None:
                raise UserError("the checkpoint holds no weight average (train.ema): resume with train.ema=0")
            self.average.load_state_dict(state["average"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # as after zero_grad(set_to_none=False) in an unbroken run
            for parameter in group["params"]:
                if parameter in self.optimizer.state:
                    parameter.grad = torch.zeros_like(parameter)
        self.epoch, self.best_score, self.best_epoch = (
            state[k] for k in ("epoch", "best_score", "best_epoch")
        )
        self.best_state, self.history, self.seconds = state["best_state"], state["history"], state["seconds"]
        self.restarts = state.get("restarts", {})
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.generator.set_state(state["generator"])
        self.schedule.load_state_dict(state["schedule"])

    def save_checkpoint(self, path: str | Path) -> None:
        save_checkpoint(self.state_dict(), path)

    def resume(self, path: str | Path) -> None:
        state = load_checkpoint(path, self.device)
        # An unbroken run looks up its coherence classifier when fit() starts, which draws from torch's RNG
        # (the classifier's layers are built before its weights are loaded); a resumed one does it before
        # restoring the checkpoint's RNG, so its next epoch draws what the unbroken run's did.
        self.prepare_coherence_classifier()
        self.load_state_dict(state)

"""What happens around the training loop, as callbacks: progress lines, the run folder, user hooks, and a
check that the shared latent learns the label.

A callback has `on_fit_start(trainer)`, `on_epoch_end(trainer, epoch, metrics)` and
`on_fit_end(trainer, final)`; each is optional. Model selection on validation data is part of the loop
itself (its state lives in the checkpoint), so it is not a callback.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from dmvae.training.trainer import Trainer

EpochHook = Callable[["Trainer", int, dict], None]
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
BEST_WEIGHTS = Path("checkpoints") / "best_model.pt"


class Callback:
    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, final: dict[str, Any]) -> None:
        pass


class Hook(Callback):
    """A plain function `fn(trainer, epoch, metrics)` called after every epoch (how tune/ reports to Ray)."""

    def __init__(self, function: EpochHook):
        self.function = function

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self.function(trainer, epoch, metrics)


class Progress(Callback):
    """A line with the reconstruction weights, one line per epoch (loss, paired reconstruction terms,
    validation accuracy, seconds) and a summary."""

    def __init__(self, write: Callable[[str], None] = print):
        self.write = write

    def on_fit_start(self, trainer: Trainer) -> None:
        weights = trainer.config.objective.recon_weight
        listing = ", ".join(f"{name} {value:g}" for name, value in weights.items())
        defaulted = ", ".join(trainer.defaulted_recon_weights)
        note = f" ({defaulted}: the default, largest modality's size / its own)" if defaulted else ""
        self.write(f"lambda (objective.recon_weight): {listing}{note}")

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        recon = "  ".join(
            f"{key.split('recon_')[1]} {value:.2f}"
            for key, value in metrics.items()
            if "/paired/recon_" in key
        )
        val = f"  val acc {metrics['val/accuracy']:.4f}" if "val/accuracy" in metrics else ""
        self.write(
            f"epoch {epoch:>3}/{trainer.config.train.epochs}  loss {metrics['train/loss']:.2f}"
            f"  recon(paired) {recon}{val}  best {trainer.best_score:.4f}  {metrics['seconds']:.1f}s"
        )

    def on_fit_end(self, trainer: Trainer, final: dict[str, Any]) -> None:
        test = f", test accuracy {final['test_accuracy']:.4f}" if "test_accuracy" in final else ""
        if "test_coherence" in final:
            test += (
                f", coherence {final['test_coherence']:.4f} (classifier's own test accuracy "
                f"{final['coherence_classifier_accuracy']:.4f})"
            )
        for line in final.get("val_lost_classes", []):
            self.write(f"warning: {line} (validation; another seed or train.restarts may give it a category)")
        for line in final.get("val_merged_classes", []):
            self.write(f"warning: {line} (no source can tell them apart; another seed or train.restarts may)")
        if final.get("stopped_early"):
            self.write(
                f"stopped early: no better validation accuracy for {trainer.config.train.patience} epochs "
                f"(train.patience)"
            )
        self.write(
            f"done: {trainer.epoch} epochs in {trainer.seconds:.1f} s; best val accuracy "
            f"{trainer.best_score:.4f} (epoch {trainer.best_epoch}){test}"
        )


class SharedLatentCheck(Callback):
    """Warns once when the shared latent carries nothing about the evaluation target (a label or attributes):
    from epoch 3 on, and once the target has been trained on at least 300 paired steps (a small data set
    takes many epochs to get there), its paired reconstruction term is within 5 % of the entropy of its
    marginal over the paired training examples (log K for K balanced classes), which is what a decoder that
    ignores z_s reaches. The message goes to `write`, or to `warnings.warn` when there is none."""

    FIRST_EPOCH = 3
    MIN_PAIRED_STEPS = 300
    TOLERANCE = 0.05

    def __init__(self, write: Callable[[str], None] | None = None):
        self.write = write
        self.entropy: float | None = None
        self.warned = False

    def on_fit_start(self, trainer: Trainer) -> None:
        spec = trainer.model.specs[trainer.target]
        train = trainer.splits.train
        if spec.kind in ("label", "attributes") and len(train.paired_index):
            values = train.tensors[trainer.target][train.paired_index.to(train.device)]
            self.entropy = marginal_entropy(spec.kind, values, spec.shape[0])

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        target = trainer.target
        recon = metrics.get(f"train/paired/recon_{target}")
        if self.warned or not self.entropy or recon is None or epoch < self.FIRST_EPOCH:
            return
        if sum(past.get("train/paired_steps", 0) for past in trainer.history) < self.MIN_PAIRED_STEPS:
            return
        if recon < (1 - self.TOLERANCE) * self.entropy:
            return
        self.warned = True
        weight = trainer.config.objective.recon_weight[target]
        message = (
            f"the shared latent carries no information about {target!r}: after {epoch} epochs its paired "
            f"reconstruction term is {recon:.3f} nats, the entropy of its marginal {self.entropy:.3f}; raise "
            f"objective.recon_weight.{target} (now {weight:g}) or data.paired_fraction"
        )
        if self.write is None:
            warnings.warn(message, stacklevel=2)
        else:
            self.write(f"warning: {message}")


def marginal_entropy(kind: str, values: torch.Tensor, size: int) -> float:
    """Entropy in nats of the empirical marginal: of the classes of a label, or summed over attributes."""
    from torch.distributions import Bernoulli, Categorical

    if kind == "label":
        counts = torch.bincount(values.long().flatten(), minlength=size).double()
        return float(Categorical(probs=counts / counts.sum()).entropy())
    return float(Bernoulli(probs=values.double().mean(0)).entropy().sum())


class RunFolder(Callback):
    """The run folder of `dmvae train --out`: config.yaml, metrics.jsonl, checkpoints/last.pt (every
    `train.checkpoint_every` epochs and the last), checkpoints/best_model.pt, final.json and figures/."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        trainer.config.save(self.folder / "config.yaml")
        truncate_metrics(self.folder / "metrics.jsonl", trainer.epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        with open(self.folder / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(metrics) + "\n")
        every = trainer.config.train.checkpoint_every
        if epoch == trainer.config.train.epochs or (every and epoch % every == 0):
            trainer.save_checkpoint(self.folder / LAST_CHECKPOINT)

    def on_fit_end(self, trainer: Trainer, final: dict[str, Any]) -> None:
        if trainer.best_state is not None:
            (self.folder / BEST_WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
            torch.save(trainer.best_state, self.folder / BEST_WEIGHTS)
        (self.folder / "final.json").write_text(json.dumps(final, indent=2) + "\n")
        if trainer.config.eval.figures and trainer.splits.test is not None:
            from dmvae.evaluation.figures import write_figures

            write_figures(trainer, self.folder / "figures")


def truncate_metrics(path: Path, epochs: int) -> None:
    """Drop metric lines written after the checkpoint a run resumes from (they will be written again)."""
    if path.exists():
        lines = [
            line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epochs
        ]
        path.write_text("".join(line + "\n" for line in lines))

"""Defaults that learn on data the tool has never seen: a small MNIST subset in the README's npz recipe,
trained with no objective settings, and the warning when the shared latent learns nothing about the label."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dmvae.config import DataConfig, RunConfig
from dmvae.data import default_root, load_splits
from dmvae.training import SharedLatentCheck, Trainer

EXAMPLES = 2500  # the npz loader's default 80/10/10 split: 2000 train, 250 val, 250 test
EPOCHS = 20  # 20 steps of 100 each; lambda 1 reaches the warning's 300 paired steps at epoch 15
STUCK = "warning: the shared latent carries no information about 'label'"


def npz_config(path: Path, objective: dict, epochs: int = EPOCHS) -> RunConfig:
    return RunConfig.from_dict({
        "device": "cpu",
        "data": {"name": "npz", "path": str(path), "kinds": {"image": "image", "label": "label"}},
        "objective": objective,
        "train": {"epochs": epochs, "checkpoint_every": 0},
        "eval": {"figures": False},
    })  # fmt: skip


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory) -> dict[str, tuple[Trainer, dict, list[str]]]:
    """Real MNIST images as [n, 28, 28] uint8 and their labels in one npz, trained twice: with the defaults
    and with the label's lambda forced to 1."""
    root = default_root().resolve()
    if not (root / "mnist" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST not found under {root}; set DMVAE_DATA or run `dmvae data fetch mnist`")
    mnist = load_splits(
        DataConfig(name="mnist", root=str(root), train_size=EXAMPLES), seed=0, with_test=False
    )
    path = tmp_path_factory.mktemp("npz") / "mnist_subset.npz"
    np.savez(
        path, image=mnist.train.tensors["image"][:, 0].numpy(), label=mnist.train.tensors["label"].numpy()
    )
    runs = {}
    for case, objective in (("default", {}), ("lambda_1", {"recon_weight": {"label": 1.0}})):
        lines: list[str] = []
        trainer = Trainer(npz_config(path, objective), progress=lines.append)
        runs[case] = (trainer, trainer.fit(), lines)
    return runs


def test_the_default_lambda_learns_a_small_npz_data_set_where_lambda_1_does_not(mnist_runs) -> None:
    trainer, final, lines = mnist_runs["default"]
    assert trainer.splits.specs[0].shape == (1, 28, 28) and len(trainer.splits.train) == 2000
    assert trainer.config.objective.recon_weight == {"image": 1.0, "label": 78.4}
    assert lines[0] == (
        "lambda (objective.recon_weight): image 1, label 78.4 "
        "(image, label: the default, largest modality's size / its own)"
    )
    # observed: 0.676 (default) and 0.148 (lambda 1; chance is 0.1)
    assert final["val_accuracy"] >= 0.5, [metrics["val/accuracy"] for metrics in trainer.history]
    forced, forced_final, _ = mnist_runs["lambda_1"]
    assert forced.config.objective.recon_weight == {"image": 1.0, "label": 1.0}
    assert forced_final["val_accuracy"] < 0.3


def test_a_label_the_shared_latent_ignores_is_warned_about_once(mnist_runs) -> None:
    *_, lines = mnist_runs["lambda_1"]
    stuck = [line for line in lines if line.startswith(STUCK)]
    assert len(stuck) == 1 and "raise objective.recon_weight.label (now 1)" in stuck[0]
    assert lines.index(stuck[0]) == 1 + 15  # after the lambda line and the epoch-15 line
    *_, default_lines = mnist_runs["default"]
    # the default lambda learns the label: no stuck warning (a digit it has not split yet may still be named)
    assert not [line for line in default_lines if line.startswith(STUCK)]


def test_without_progress_the_warning_goes_to_warnings(synthetic_splits, monkeypatch) -> None:
    monkeypatch.setattr(SharedLatentCheck, "MIN_PAIRED_STEPS", 0)
    config = RunConfig.from_dict({
        "device": "cpu",
        "data": {"name": "npz", "path": "unused.npz"},
        "model": {"architecture": "mlp", "hidden_dim": 32, "private_dim": {"image": 3}},
        "objective": {"recon_weight": {"label": 0.0}},  # the label decoder never learns
        "train": {"epochs": 3, "batch_size": 16, "checkpoint_every": 0},
        "eval": {"figures": False},
    })  # fmt: skip
    for epochs, expected in ((2, 0), (3, 1)):  # the check starts at epoch 3
        trainer = Trainer(
            config.with_overrides([f"train.epochs={epochs}"]), splits=synthetic_splits(), progress=None
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit()
        stuck = [w for w in caught if "carries no information about 'label'" in str(w.message)]
        assert len(stuck) == expected and all(w.category is UserWarning for w in stuck)

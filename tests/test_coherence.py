"""Coherence: the classifier (trained on a small real MNIST subset, cached, reloaded, corrupt), the metric
on constructed cases with known answers, and final runs that report it in final.json."""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.data import DatasetSplits, ModalitySpec, default_root
from dmvae.errors import UserError
from dmvae.evaluation import coherence as coherence_module
from dmvae.evaluation.coherence import (
    ClassifierSettings,
    CoherenceClassifier,
    accuracy,
    classifier_path,
    coherence,
    coherence_per_class,
    load_or_train_classifier,
    train_classifier,
)
from dmvae.models import build_model
from dmvae.training import Trainer
from dmvae.training.saved_run import evaluate_run

TINY_CLASSIFIER = ClassifierSettings(epochs=2, train_size=1000, batch_size=50, lr=2e-3)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")  # fmt: skip


def mnist_root() -> Path:
    root = default_root().resolve()
    if not (root / "mnist" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST not found under {root}; set DMVAE_DATA or run `dmvae data fetch mnist`")
    return root


@pytest.fixture(scope="module")
def tiny_mnist_classifier(tmp_path_factory) -> tuple[CoherenceClassifier, Path, list[str]]:
    """A classifier trained on the first 1,000 MNIST training images for 2 epochs, cached in a tmp folder."""
    path = tmp_path_factory.mktemp("classifier") / "mnist" / "coherence_classifier.pt"
    messages: list[str] = []
    classifier = load_or_train_classifier("mnist", mnist_root(), messages.append, TINY_CLASSIFIER, path)
    return classifier, path, messages


# --- the classifier ----------------------------------------------------------------------------------------
def test_a_small_classifier_beats_chance_by_far_and_reports_each_epoch(tiny_mnist_classifier) -> None:
    classifier, path, messages = tiny_mnist_classifier
    assert classifier.test_accuracy > 0.7  # chance is 0.1; measured 0.90 here
    assert classifier.dataset == "mnist" and classifier.classes == 10
    assert classifier.image_shape == (1, 28, 28)
    assert classifier.settings == {"epochs": 2, "train_size": 1000, "batch_size": 50, "lr": 2e-3, "seed": 0,
                                   "train_examples": 1000}  # fmt: skip
    epoch_lines = [line for line in messages if "epoch" in line]
    assert [line.split("epoch ")[1].split()[0] for line in epoch_lines] == ["1/2", "2/2"]
    assert any(f"test accuracy {classifier.test_accuracy:.4f}" in line for line in messages)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))


def test_the_cached_classifier_is_loaded_without_training(tiny_mnist_classifier, monkeypatch) -> None:
    classifier, path, _ = tiny_mnist_classifier
    written = path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(coherence_module, "train_classifier", no_training)
    monkeypatch.setattr(coherence_module, "load_splits", no_training)
    messages: list[str] = []
    loaded = load_or_train_classifier("mnist", "/nonexistent", messages.append, TINY_CLASSIFIER, path)
    assert path.stat().st_mtime_ns == written
    assert loaded.test_accuracy == classifier.test_accuracy and loaded.settings == classifier.settings
    for key, value in classifier.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key
    assert messages == [f"coherence classifier: {path} (test accuracy {classifier.test_accuracy:.4f})"]


def test_a_cache_trained_with_other_settings_is_replaced(tiny_mnist_classifier, tmp_path) -> None:
    _, trained, _ = tiny_mnist_classifier
    path = tmp_path / "coherence_classifier.pt"
    shutil.copy(trained, path)
    other = ClassifierSettings(epochs=1, train_size=200, batch_size=50)
    messages: list[str] = []
    classifier = load_or_train_classifier("mnist", mnist_root(), messages.append, other, path)
    assert "trained with other settings" in messages[0]
    assert classifier.settings["train_examples"] == 200
    assert coherence_module.load_classifier(path).settings == classifier.settings


def test_a_cached_classifier_of_another_dataset_is_a_user_error(tiny_mnist_classifier, tmp_path) -> None:
    _, trained, _ = tiny_mnist_classifier
    path = classifier_path("fmnist", tmp_path)
    path.parent.mkdir(parents=True)
    shutil.copy(trained, path)
    with pytest.raises(UserError, match=f"one of 'mnist', not of 'fmnist'.*rm {path}"):
        load_or_train_classifier("fmnist", tmp_path, progress=lambda message: None)


def test_training_is_seeded_and_leaves_the_callers_rng_alone(synthetic_splits) -> None:
    splits = synthetic_splits(n_train=120, n_eval=40)
    settings = ClassifierSettings(epochs=1, batch_size=30)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = train_classifier(splits.train, splits.test, settings, progress=lambda message: None)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_classifier(splits.train, splits.test, settings, progress=lambda message: None)
    for key, value in first.network.state_dict().items():
        assert torch.equal(second.network.state_dict()[key], value), key
    assert first.test_accuracy == second.test_accuracy == accuracy(first, splits.test)


def test_parallel_runs_train_the_missing_classifier_once(synthetic_splits, monkeypatch, tmp_path) -> None:
    """Two final runs at once (dmvae tune final): one trains, the other waits for the lock and loads."""
    splits = synthetic_splits(n_train=200, n_eval=40)
    monkeypatch.setattr(coherence_module, "load_splits", lambda *args, **kwargs: splits)
    trained = []

    def counted(*args, **kwargs):
        trained.append(1)
        return train_classifier(*args, **kwargs)

    monkeypatch.setattr(coherence_module, "train_classifier", counted)
    found = [None, None]

    def run(slot: int) -> None:
        found[slot] = load_or_train_classifier("mnist", tmp_path, lambda message: None)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trained) == 1 and all(found) and found[0].test_accuracy == found[1].test_accuracy


@pytest.mark.parametrize("contents", ["not a torch file", "a dict of the wrong shape", "empty"])
def test_a_corrupt_cached_classifier_is_a_one_line_user_error(contents: str, tmp_path: Path) -> None:
    path = classifier_path("mnist", tmp_path)
    path.parent.mkdir(parents=True)
    if contents == "not a torch file":
        path.write_bytes(b"this is not a classifier" * 20)
    elif contents == "a dict of the wrong shape":
        torch.save({"format": 1, "image_shape": [1, 28, 28], "classes": 10, "state_dict": {}}, path)
    else:
        path.write_bytes(b"")
    with pytest.raises(UserError) as error:
        load_or_train_classifier("mnist", tmp_path, progress=lambda message: None)
    message = str(error.value)
    assert "\n" not in message and "corrupt" in message and f"rm {path}" in message


def test_datasets_without_a_classifier_get_none(tmp_path: Path) -> None:
    for name in ("celeba", "npz", "synthetic"):
        assert load_or_train_classifier(name, tmp_path, progress=lambda message: None) is None


# --- the metric on constructed cases ------------------------------------------------------------------------
SIDE = CLASSES = 10


class ConfidentLabelExpert(nn.Module):
    """Label encoder: q(z_s | k) sharply at class k (categorical logits, or Gaussian mean 5 e_k)."""

    def __init__(self, gaussian: bool):
        super().__init__()
        self.gaussian = gaussian

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        if self.gaussian:
            return torch.cat([5 * one_hot, torch.full_like(one_hot, -10.0)], dim=-1)
        return 20 * one_hot


class BrightRowOfTheClass(nn.Module):
    """Image decoder: row argmax(z_s) on, the rest off, whatever the private latent."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = torch.full((len(z), 1, SIDE, SIDE), -10.0)
        logits[torch.arange(len(z)), 0, z[:, -CLASSES:].argmax(-1)] = 10.0
        return logits


class ReadTheBrightRow(nn.Module):
    """A stub classifier: the brightest row r, reported as class mapping[r]."""

    def __init__(self, mapping: list[int]):
        super().__init__()
        self.register_buffer("mapping", torch.tensor(mapping))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.mapping[images[:, 0].mean(-1).argmax(-1)], CLASSES).float()


def stub_model(kind: str):
    specs = [ModalitySpec("image", "image", (1, SIDE, SIDE)), ModalitySpec("label", "label", (CLASSES,))]
    model = {"architecture": "mlp", "hidden_dim": 8, "shared_dim": CLASSES}
    if kind == "mvae":
        model |= {"kind": "mvae", "shared": "gaussian", "private_dim": {}}
    else:
        model |= {"shared": "categorical", "private_dim": {"image": 3}}
    vae = build_model(RunConfig.from_dict({"device": "cpu", "model": model}), specs)
    vae.encoders["label"] = ConfidentLabelExpert(gaussian=kind == "mvae")
    vae.decoders["image"] = BrightRowOfTheClass()
    return vae


def stub_classifier(mapping: list[int]) -> CoherenceClassifier:
    return CoherenceClassifier(ReadTheBrightRow(mapping), (1, SIDE, SIDE), CLASSES, test_accuracy=1.0)


@pytest.mark.parametrize("kind", ["dmvae", "mvae"])
def test_coherence_is_the_fraction_the_classifier_gives_back(kind: str) -> None:
    model = stub_model(kind)
    model.train()
    identity = list(range(CLASSES))
    assert coherence(model, stub_classifier(identity), "image", "label", samples_per_class=120) == 1.0
    wrong_for_7_8_9 = identity[:7] + [0, 0, 0]
    per_class = coherence_per_class(model, stub_classifier(wrong_for_7_8_9), "image", "label", 120)
    assert per_class.tolist() == [1.0] * 7 + [0.0] * 3
    assert coherence(model, stub_classifier(wrong_for_7_8_9), "image", "label") == pytest.approx(0.7)
    assert model.training


def test_coherence_is_seeded_and_leaves_the_callers_rng_alone(synthetic_splits) -> None:
    """A real (untrained) model and classifier: the same number every time; the global RNG untouched."""
    splits = synthetic_splits(n_train=60, n_eval=30)
    config = RunConfig.from_dict({"device": "cpu", "model": {"architecture": "mlp", "hidden_dim": 16}})
    model = build_model(config, splits.specs)
    classifier = train_classifier(splits.train, splits.test, ClassifierSettings(epochs=1), lambda m: None)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    values = [coherence(model, classifier, "image", "label", samples_per_class=30) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert values[0] == values[1] and 0 <= values[0] <= 1


# --- final runs --------------------------------------------------------------------------------------------
def small_mnist_config(root: Path, *overrides: str) -> RunConfig:
    return RunConfig.from_dict({
        "device": "cpu", "seed": 0,
        "data": {"name": "mnist", "root": str(root), "train_size": 300, "val_labels": 500},
        "model": {"architecture": "mlp", "hidden_dim": 64},
        "objective": {"recon_weight": {"label": 50.0}},
        "train": {"epochs": 1, "batch_size": 50, "checkpoint_every": 0},
        "eval": {"figures": False, "coherence_samples": 20},
    }).with_overrides(list(overrides))  # fmt: skip


def test_a_final_run_writes_coherence_into_final_json(tiny_mnist_classifier, tmp_path: Path) -> None:
    classifier, _, _ = tiny_mnist_classifier
    config = small_mnist_config(mnist_root())
    lines: list[str] = []
    trainer = Trainer(config, out_dir=tmp_path, progress=lines.append, coherence_classifier=classifier)
    final = trainer.fit()
    written = json.loads((tmp_path / "final.json").read_text())
    assert written == final
    assert 0 <= final["test_coherence"] <= 1
    assert final["coherence_classifier_accuracy"] == classifier.test_accuracy
    trainer.model.load_state_dict(trainer.best_state)
    assert final["test_coherence"] == coherence(trainer.model, classifier, "image", "label", 20)
    assert f"coherence {final['test_coherence']:.4f}" in lines[-1]


def test_final_runs_find_the_cached_classifier_beside_the_data(tiny_mnist_classifier, tmp_path: Path) -> None:
    """The data root holds MNIST (links) and a cached classifier: the run loads it; switched off, no keys."""
    classifier, path, _ = tiny_mnist_classifier
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        (root / "mnist" / name).symlink_to(mnist_root() / "mnist" / name)
    shutil.copy(path, classifier_path("mnist", root))
    lines: list[str] = []
    final = Trainer(small_mnist_config(root), out_dir=tmp_path / "run", progress=lines.append).fit()
    assert final["coherence_classifier_accuracy"] == classifier.test_accuracy
    assert any(line.startswith("coherence classifier: ") for line in lines)
    evaluation = evaluate_run(tmp_path / "run", figures=False)  # dmvae evaluate: the same weights and seed
    assert evaluation["test_coherence"] == final["test_coherence"]
    off = Trainer(small_mnist_config(root, "eval.coherence=false"), progress=None).fit()
    assert "test_accuracy" in off and not any("coherence" in key for key in off)


def test_a_corrupt_cached_classifier_stops_a_final_run_before_training(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        (root / "mnist" / name).symlink_to(mnist_root() / "mnist" / name)
    classifier_path("mnist", root).write_bytes(b"\x00" * 100)
    config = tmp_path / "config.yaml"
    small_mnist_config(root).save(config)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dmvae: error: the coherence classifier") and "\n" not in error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_searches_and_datasets_without_a_classifier_get_no_coherence(synthetic_splits) -> None:
    config = RunConfig.from_dict({
        "device": "cpu", "model": {"architecture": "mlp", "hidden_dim": 16},
        "train": {"epochs": 1, "batch_size": 16}, "eval": {"figures": False},
    })  # fmt: skip
    splits = synthetic_splits()  # named "synthetic": no classifier, though data.name is mnist
    final = Trainer(config, splits=splits, progress=None).fit()
    assert "test_accuracy" in final and not any("coherence" in key for key in final)
    search = DatasetSplits(splits.name, splits.specs, splits.train, splits.val, None)
    fake = CoherenceClassifier(nn.Identity(), (1, 8, 8), 10, 1.0)
    final = Trainer(config, splits=search, progress=None, coherence_classifier=fake).fit()
    assert not any(key.startswith("test") or "coherence" in key for key in final)


def test_eval_coherence_settings_are_checked() -> None:
    with pytest.raises(UserError, match="eval.coherence must be true or false"):
        RunConfig.from_dict({"eval": {"coherence": "yes"}})
    with pytest.raises(UserError, match="eval.coherence_samples"):
        RunConfig.from_dict({"eval": {"coherence_samples": 0}})


# --- the report ------------------------------------------------------------------------------------------
def write_run(folder: Path, model: dict, seed: int, final: dict) -> None:
    folder.mkdir(parents=True)
    RunConfig.from_dict({"seed": seed, "data": {"paired_fraction": 0.01}, "model": model}).save(
        folder / "config.yaml"
    )
    (folder / "final.json").write_text(json.dumps({"epochs": 5, "seconds": 10.0} | final))


def test_the_report_shows_coherence_over_seeds_and_the_classifiers_accuracy(tmp_path: Path) -> None:
    from analysis.compare import compare, to_markdown
    from analysis.load import load_runs
    from analysis.report import write_report

    mvae = {"kind": "mvae", "shared": "gaussian", "private_dim": {}}
    for seed, (accuracy_value, coherence_value) in enumerate([(0.90, 0.80), (0.92, 0.90)], start=1):
        final = {"val_accuracy": accuracy_value, "test_accuracy": accuracy_value,
                 "test_coherence": coherence_value, "coherence_classifier_accuracy": 0.9856}  # fmt: skip
        write_run(tmp_path / "runs" / f"dmvae-{seed}", {}, seed, final)
    write_run(tmp_path / "runs" / "mvae-1", mvae, 1, {"val_accuracy": 0.7, "test_accuracy": 0.7})

    table = compare(load_runs(tmp_path / "runs")).set_index("model")
    assert table.loc["DMVAE_disc", "coherence"] == pytest.approx(0.85)
    assert table.loc["DMVAE_disc", "coherence_std"] == pytest.approx(0.0707107)  # ddof 1
    assert table.loc["DMVAE_disc", "coherence_classifier_accuracy"] == 0.9856
    assert math.isnan(table.loc["MVAE", "coherence"])
    lines = to_markdown(table.reset_index()).splitlines()
    assert "| paper table | coherence (test) | epochs |" in lines[0]
    assert "| 1 | 0.850 ± 0.071 | 5.0 |" in lines[2] and "| 1 | - | 5.0 |" in lines[3]

    report = write_report([tmp_path / "runs"], tmp_path / "report").read_text()
    assert "| 0.850 ± 0.071 |" in report
    assert "The coherence classifiers' own test accuracy: mnist 0.9856." in report


def test_the_report_has_no_coherence_column_without_coherence(tmp_path: Path) -> None:
    from analysis.compare import coherence_note, compare, to_markdown
    from analysis.load import load_runs

    write_run(tmp_path / "run", {}, 1, {"val_accuracy": 0.9, "test_accuracy": 0.9})
    table = compare(load_runs(tmp_path))
    assert "coherence" not in to_markdown(table) and coherence_note(table) == ""

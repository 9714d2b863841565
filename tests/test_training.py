"""The training loop: resume = uninterrupted run, seeding, schedules, real data, CelebA and npz, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import write_celeba_fixture
from fixtures_training import assert_same_parameters, straight_and_resumed, tiny_config, without_timing

from dmvae.config import RunConfig, load_config
from dmvae.training import Trainer, TrainingDiverged
from dmvae.training.schedules import AuthorsSchedule, MixedSchedule

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# --- resume and seeding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, ema, lr_decay",
    [("authors", 0.0, "none"), ("mixed", 0.0, "none"), ("mixed", 0.9, "none"), ("mixed", 0.0, "cosine")],
)
def test_resumed_run_repeats_the_uninterrupted_one(
    schedule: str, ema: float, lr_decay: str, synthetic_splits, tmp_path: Path
) -> None:
    train = {"schedule": schedule, "paired_ratio": 0.5, "ema": ema, "lr_decay": lr_decay}
    config = tiny_config(train=train)
    splits = synthetic_splits(n_train=160, paired_fraction=0.1)
    straight, final, resumed, final_resumed = straight_and_resumed(config, splits, tmp_path, stop_after=1)
    assert_same_parameters(straight.model, resumed.model)
    assert_same_parameters(straight.scored_model, resumed.scored_model)  # the weight average, under ema
    assert without_timing(straight.history) == without_timing(resumed.history)
    assert len(resumed.history) == 2
    for key in ("test_accuracy", "test_accuracy_last", "best_epoch", "epochs"):
        assert final[key] == final_resumed[key]


def test_a_resumed_run_repeats_the_unbroken_one_when_its_classifier_lookup_draws_random_numbers(
    synthetic_splits, tmp_path: Path, monkeypatch
) -> None:
    """Looking up the cached coherence classifier builds its layers (torch's RNG) when fit() starts; a resumed
    run must do that before it restores the checkpoint's RNG, or its epochs draw other numbers than the
    unbroken run's (seen in the MNIST finals: resumed runs left their unbroken twins at the next epoch)."""
    import dmvae.evaluation.coherence

    def lookup(*args, **kwargs):
        torch.nn.Linear(8, 8)  # as the real lookup builds its network before loading the cached weights
        return None

    monkeypatch.setattr(dmvae.evaluation.coherence, "load_or_train_classifier", lookup)
    config = tiny_config(train={"epochs": 3}, eval={"figures": False, "coherence": True})
    splits = synthetic_splits(n_train=96, paired_fraction=0.25)
    assert splits.test is not None  # a final run: the lookup only happens with a test split
    straight, _, resumed, _ = straight_and_resumed(config, splits, tmp_path, stop_after=1)
    assert without_timing(straight.history) == without_timing(resumed.history)
    assert_same_parameters(straight.model, resumed.model)


def test_same_seed_same_numbers_other_seed_other_numbers(synthetic_splits) -> None:
    splits = synthetic_splits(n_train=96, paired_fraction=0.5)
    runs = []
    for seed in (0, 0, 1):
        trainer = Trainer(tiny_config(seed=seed, train={"epochs": 1}), splits=splits, progress=None)
        trainer.fit()
        runs.append(trainer)
    assert_same_parameters(runs[0].model, runs[1].model)
    assert without_timing(runs[0].history) == without_timing(runs[1].history)
    pairs = zip(runs[0].model.parameters(), runs[2].model.parameters(), strict=True)
    assert all(not torch.equal(a, b) for a, b in pairs)
    assert runs[0].history[0]["train/loss"] != runs[2].history[0]["train/loss"]


# --- schedules -----------------------------------------------------------------------------------------


def split_index(n: int, n_paired: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:n_paired].sort().values, order[n_paired:].sort().values


@pytest.mark.parametrize("n_paired", [1, 23, 100, 250])
def test_authors_schedule(n_paired: int) -> None:
    paired, unpaired = split_index(250, n_paired)
    batch = 20
    generator = torch.Generator().manual_seed(0)
    schedule = AuthorsSchedule(paired, unpaired, batch, generator)
    first = schedule.epoch(generator)
    second = schedule.epoch(generator)
    assert len(first) == len(second)
    for step_a, step_b in zip(first, second, strict=True):  # the same batches every epoch
        assert len(step_a) == len(step_b) == 1
        assert step_a[0].paired == step_b[0].paired and torch.equal(step_a[0].index, step_b[0].index)
    paired_parts = [step[0] for step in first if step[0].paired]
    unpaired_parts = [step[0] for step in first if not step[0].paired]
    assert len(paired_parts) == math.ceil(n_paired / batch)
    assert len(unpaired_parts) == math.ceil((250 - n_paired) / batch)
    assert all(len(part.index) <= batch for step in first for part in step)
    seen = torch.cat([part.index for part in paired_parts])
    assert sorted(seen.tolist()) == paired.tolist()  # every paired example exactly once
    seen = [index for part in unpaired_parts for index in part.index.tolist()]
    assert sorted(seen) == unpaired.tolist()


@pytest.mark.parametrize("ratio", [0.25, 1.0])
def test_mixed_schedule(ratio: float) -> None:
    paired, unpaired = split_index(230, 30)
    batch = 20
    generator = torch.Generator().manual_seed(0)
    schedule = MixedSchedule(paired, unpaired, batch, ratio)
    epochs = [schedule.epoch(generator) for _ in range(3)]
    paired_stream = []
    for steps in epochs:
        assert len(steps) == math.ceil(200 / batch)
        unpaired_seen = []
        for step in steps:
            assert [part.paired for part in step] == [False, True]
            unpaired_seen += step[0].index.tolist()
            assert len(step[1].index) == round(ratio * batch)
            assert set(step[1].index.tolist()) <= set(paired.tolist())
            paired_stream += step[1].index.tolist()
        assert sorted(unpaired_seen) == unpaired.tolist()  # every image-only example once per epoch
    # the paired stream runs through all paired examples before repeating one
    for start in range(0, len(paired_stream) - 30 + 1, 30):
        assert sorted(paired_stream[start : start + 30]) == paired.tolist()
    assert [step[0].index.tolist() for step in epochs[0]] != [step[0].index.tolist() for step in epochs[1]]


def test_mixed_schedule_with_everything_paired_is_one_shuffled_pass() -> None:
    paired, unpaired = split_index(95, 95)
    assert len(unpaired) == 0
    generator = torch.Generator().manual_seed(0)
    schedule = MixedSchedule(paired, unpaired, 20, 1.0)
    first, second = schedule.epoch(generator), schedule.epoch(generator)
    for steps in (first, second):
        assert len(steps) == 5 and all(len(step) == 1 and step[0].paired for step in steps)
        assert sorted(torch.cat([step[0].index for step in steps]).tolist()) == list(range(95))
    flat = torch.cat([step[0].index for step in first])
    assert not torch.equal(flat, flat.sort().values)  # shuffled
    assert not torch.equal(flat, torch.cat([step[0].index for step in second]))


# --- real data -----------------------------------------------------------------------------------------


def mnist_config(root: Path, *overrides: str) -> RunConfig:
    """configs/mnist_dmvae.yaml when present (else the same model inline), on a small, fast regime."""
    regime = [
        "device=cpu", f"data.root={root}", "data.train_size=5000", "data.paired_fraction=1.0",
        "train.schedule=mixed", "train.epochs=2", "train.batch_size=20", "train.lr=0.002",
        "train.checkpoint_every=0", "eval.figures=false", "eval.protocol=mode", "seed=0",
        "eval.coherence=false",  # the full coherence classifier takes minutes to train (see test_coherence)
    ]  # fmt: skip
    path = CONFIG_DIR / "mnist_dmvae.yaml"
    if path.is_file():
        return load_config(path, [*regime, *overrides])
    inline = RunConfig.from_dict({
        "data": {"name": "mnist"},
        "model": {"architecture": "mnist", "shared": "categorical", "shared_dim": 10,
                  "private_dim": {"image": 10}},
        "objective": {"recon_weight": {"label": 50.0}},
    })  # fmt: skip
    return inline.with_overrides([*regime, *overrides])


# Observed val accuracies after 2 epochs (seeds 0 / 1 / 2): MNIST DMVAE 0.60 / 0.64 / 0.80; Fashion-MNIST
# DMVAE (one-hidden-layer "mnist" networks) 0.62 / 0.60 / 0.52; MNIST MVAE 0.59 / 0.63 / 0.58.
REAL_RUNS = {
    "mnist_dmvae": ("mnist", [], 0.45),
    "fmnist_dmvae": ("fmnist", ["data.name=fmnist", "model.architecture=mnist"], 0.4),
    "mnist_mvae": ("mnist", ["model.kind=mvae", "model.shared=gaussian", "model.shared_dim=64",
                             "model.private_dim={}", "model.architecture=mvae_mlp",
                             "objective.kl_anneal_epochs=1", "train.lr=0.001"], 0.45),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REAL_RUNS))
def test_real_data_learns_to_classify_by_cross_generation(case: str, real_data_root) -> None:
    dataset, overrides, bar = REAL_RUNS[case]
    config = mnist_config(real_data_root(dataset), *overrides)
    trainer = Trainer(config, progress=None)
    assert len(trainer.splits.train) == 5000 and len(trainer.splits.val) == 10_000
    final = trainer.fit()
    accuracies = [metrics["val/accuracy"] for metrics in trainer.history]
    assert final["val_accuracy"] == max(accuracies) > bar, accuracies
    counts = torch.bincount(trainer.splits.val.tensors["label"], minlength=10).tolist()
    per_class = sum(a * n for a, n in zip(final["val_class_accuracy"], counts, strict=True)) / sum(counts)
    assert abs(per_class - final["val_accuracy"]) < 1e-3
    assert final["test_accuracy"] > bar - 0.05


# --- other data sets -----------------------------------------------------------------------------------


def test_celeba_fixture_trains_and_reports_accuracy_and_f1(tmp_path: Path) -> None:
    write_celeba_fixture(tmp_path, n=24)
    config = RunConfig.from_dict({
        "device": "cpu",
        "data": {"name": "celeba", "root": str(tmp_path), "paired_fraction": 0.5},
        "model": {"architecture": "celeba", "shared": "binary", "shared_dim": 18,
                  "private_dim": {"image": 8}},
        "train": {"epochs": 1, "batch_size": 8, "checkpoint_every": 0},
        "eval": {"figures": False},
    })  # fmt: skip
    trainer = Trainer(config, progress=None)
    assert trainer.target == "attributes" and trainer.splits.specs[0].shape == (3, 64, 64)
    final = trainer.fit()
    for key in ("val/accuracy", "val/f1"):
        assert 0 <= trainer.history[0][key] <= 1
    for key in ("test_accuracy", "test_f1", "test_accuracy_last", "test_f1_last"):
        assert 0 <= final[key] <= 1
    assert math.isfinite(trainer.history[0]["train/loss"])


def write_npz(path: Path, n: int = 120, paired: bool = True) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    images = 0.5 * rng.random((n, 1, 8, 8)).astype(np.float32)
    images[np.arange(n), 0, labels % 8] += 0.5
    arrays = {"image": images, "label": labels}
    if paired:
        arrays["paired"] = rng.random(n) < 0.3
    np.savez(path, **arrays)
    return path


def test_npz_dataset_trains(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "toy.npz")
    config = tiny_config(
        data={"name": "npz", "path": str(path), "kinds": {"image": "image", "label": "label"}},
        train={"epochs": 1},
    )
    trainer = Trainer(config, progress=None)
    train = trainer.splits.train
    assert [spec.name for spec in trainer.splits.specs] == ["image", "label"]
    assert len(train) + len(trainer.splits.val) + len(trainer.splits.test) == 120
    assert 0 < int(train.paired.sum()) < len(train)  # the file's paired mask, not all paired
    final = trainer.fit()
    assert {"train/unpaired/recon_image", "train/paired/recon_label"} <= set(trainer.history[0])
    assert 0 <= final["test_accuracy"] <= 1


def test_fit_writes_its_files_and_the_config_round_trips(synthetic_splits, tmp_path: Path) -> None:
    config = tiny_config(train={"epochs": 2})
    trainer = Trainer(config, out_dir=tmp_path / "run", splits=synthetic_splits(), progress=None)
    final = trainer.fit()
    run = tmp_path / "run"
    assert json.loads((run / "final.json").read_text()) == final
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert lines == json.loads(json.dumps(trainer.history))
    loaded = load_config(run / "config.yaml")
    assert loaded == trainer.config
    assert loaded.model.private_dim == {"image": 3, "label": 0}  # defaults written out explicitly
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best_model.pt").is_file()


def test_a_nan_loss_raises_training_diverged(synthetic_splits, monkeypatch) -> None:
    trainer = Trainer(tiny_config(train={"epochs": 1}), splits=synthetic_splits(), progress=None)
    original = trainer.loss_fn

    def nan_loss(batch, dataset_size, kl_weight=1.0):
        loss, terms = original(batch, dataset_size, kl_weight)
        return loss * float("nan"), terms

    monkeypatch.setattr(trainer, "loss_fn", nan_loss)
    with pytest.raises(TrainingDiverged, match="diverged"):
        trainer.fit()


def test_a_huge_learning_rate_raises_training_diverged(synthetic_splits) -> None:
    config = tiny_config(model={"shared": "gaussian", "shared_dim": 4}, train={"epochs": 3, "lr": 1e30})
    with pytest.raises(TrainingDiverged):
        Trainer(config, splits=synthetic_splits(), progress=None).fit()


@pytest.mark.parametrize("patience, epochs, stopped", [(0, 6, False), (2, 4, True), (4, 6, False)])
def test_patience_stops_once_validation_accuracy_stops_improving(
    patience: int, epochs: int, stopped: bool, synthetic_splits, monkeypatch
) -> None:
    config = tiny_config(train={"epochs": 6, "patience": patience})
    trainer = Trainer(config, splits=synthetic_splits(), progress=None)
    scripted = [0.5, 0.7, 0.6, 0.7, 0.65, 0.69]  # by epoch: best at 2; a tie (epoch 4) is no improvement
    evaluate = trainer.evaluate

    def scripted_val(split: str = "val", per_class: bool = False) -> dict:
        scores = evaluate(split, per_class)
        return scores | {"accuracy": scripted[trainer.epoch - 1]} if split == "val" else scores

    monkeypatch.setattr(trainer, "evaluate", scripted_val)
    final = trainer.fit()
    assert (final["epochs"], final["best_epoch"], final["stopped_early"]) == (epochs, 2, stopped)
    assert len(trainer.history) == epochs


def test_negative_patience_is_a_one_line_error() -> None:
    from dmvae.errors import UserError

    with pytest.raises(UserError, match="train.patience must be a whole number"):
        tiny_config(train={"patience": -1})

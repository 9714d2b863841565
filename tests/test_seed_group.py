"""A study with data_seeds: each trial trains one model per data seed in lockstep (tune.trainable.SeedGroup),
on real MNIST subsets. Each seed trains exactly as a run on that seed alone; the reported metrics are the
means over the seeds; a checkpoint of the group resumes it where it stopped."""

from __future__ import annotations

import copy
from statistics import fmean

import pytest
from fixtures_training import Interrupted, assert_same_parameters, tiny_config

from dmvae.data import load_splits
from dmvae.training import Trainer
from tune.trainable import SeedGroup

SEEDS = [3, 4]


@pytest.fixture
def mnist_config(real_data_root):
    root = real_data_root("mnist")
    data = {"name": "mnist", "root": str(root), "train_size": 600, "paired_fraction": 0.05, "val_labels": 100}
    return tiny_config(data=data, train={"epochs": 3, "batch_size": 32, "lr": 3e-3})


def alone(config, seed: int) -> Trainer:
    seeded = copy.deepcopy(config)
    seeded.seed = seed
    splits = load_splits(seeded.data, seed, progress=lambda message: None, with_test=False)
    trainer = Trainer(seeded, splits=splits, progress=None)
    trainer.fit()
    return trainer


def test_each_seed_trains_as_alone_and_the_group_reports_their_mean(mnist_config) -> None:
    solo = [alone(mnist_config, seed) for seed in SEEDS]
    # the two data seeds pair different images: the group averages two different runs
    assert solo[0].history[-1]["train/loss"] != solo[1].history[-1]["train/loss"]
    reported: list[tuple[int, dict, float]] = []

    def hook(group: SeedGroup, epoch: int, metrics: dict) -> None:
        reported.append((epoch, metrics, group.best_score))

    group = SeedGroup(mnist_config, SEEDS, hooks=[hook], device="cpu")
    group.fit()
    assert [epoch for epoch, _, _ in reported] == [1, 2, 3]
    for epoch, metrics, best in reported:
        per_seed = [t.history[epoch - 1] for t in solo]
        for seed, seed_metrics in zip(SEEDS, per_seed, strict=True):
            assert metrics[f"val/accuracy_seed_{seed}"] == seed_metrics["val/accuracy"]
        assert metrics["val/accuracy"] == pytest.approx(fmean(m["val/accuracy"] for m in per_seed))
        assert metrics["train/loss"] == pytest.approx(fmean(m["train/loss"] for m in per_seed))
        assert best == pytest.approx(fmean(m["val/best_accuracy"] for m in per_seed))
        # the group's epoch time is its seeds' times together
        seconds = [t.history[epoch - 1]["seconds"] for t in group.trainers]
        assert metrics["seconds"] == pytest.approx(sum(seconds))
    for trainer, twin in zip(group.trainers, solo, strict=True):
        assert_same_parameters(trainer.model, twin.model)


def test_a_seed_out_of_patience_stops_while_the_others_go_on(mnist_config) -> None:
    reported: list[dict] = []
    group = SeedGroup(mnist_config, SEEDS, hooks=[lambda g, e, m: reported.append(m)], device="cpu")
    stopping = group.trainers[0]
    stopping.out_of_patience = lambda: stopping.epoch >= 1  # as train.patience would after its first epoch
    group.fit()
    assert (stopping.epoch, group.trainers[1].epoch) == (1, 3) and [m["epoch"] for m in reported] == [1, 2, 3]
    assert {m[f"val/accuracy_seed_{SEEDS[0]}"] for m in reported} == {stopping.history[0]["val/accuracy"]}
    going_on = group.trainers[1].history
    assert [m["seconds"] for m in reported[1:]] == pytest.approx([m["seconds"] for m in going_on[1:]])
    assert_same_parameters(group.trainers[1].model, alone(mnist_config, SEEDS[1]).model)


def test_a_group_checkpoint_resumes_where_it_stopped(mnist_config, tmp_path) -> None:
    straight: list[dict] = []
    SeedGroup(mnist_config, SEEDS, hooks=[lambda g, e, m: straight.append(m)], device="cpu").fit()
    path = tmp_path / "trainer.pt"

    def stop_after_two(group: SeedGroup, epoch: int, metrics: dict) -> None:
        if epoch == 2:
            group.save_checkpoint(path)
            raise Interrupted

    with pytest.raises(Interrupted):
        SeedGroup(mnist_config, SEEDS, hooks=[stop_after_two], device="cpu").fit()
    resumed: list[dict] = []
    group = SeedGroup(mnist_config, SEEDS, hooks=[lambda g, e, m: resumed.append(m)], device="cpu")
    group.resume(path)
    assert group.epoch == 2
    group.fit()
    timeless = [{k: v for k, v in m.items() if k != "seconds"} for m in straight]
    assert [{k: v for k, v in m.items() if k != "seconds"} for m in resumed] == timeless[2:]
    with pytest.raises(ValueError, match="holds data seeds"):
        SeedGroup(mnist_config, [3, 5], hooks=[], device="cpu").resume(path)

"""train.ema: the moving average of the weights, its closed form, the trainer's use of it, its round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures_training import assert_same_parameters, tiny_config

from dmvae.config import RunConfig
from dmvae.errors import UserError
from dmvae.evaluation.metrics import evaluate_cross_generation
from dmvae.training import Trainer
from dmvae.training.averaging import WeightAverage
from dmvae.training.saved_run import load_run


def test_the_average_is_the_exponential_moving_average_of_the_weights():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.9)
    draws = [torch.randn(2, 3, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    for weight in draws:
        with torch.no_grad():
            model.weight.copy_(weight)
        average.update(model)
    expected = draws[0]  # the first update copies
    for weight in draws[1:]:
        expected = 0.9 * expected + 0.1 * weight
    assert torch.allclose(average.model.weight, expected, atol=1e-6)
    state = average.state_dict()
    other = WeightAverage(torch.nn.Linear(3, 2), decay=0.9)
    other.load_state_dict(state)
    assert torch.equal(other.model.weight, average.model.weight) and other.state_dict()["updates"] == 4


def test_the_trainer_updates_the_average_after_every_step_and_scores_it(synthetic_splits, monkeypatch):
    splits = synthetic_splits(n_train=96, paired_fraction=0.25)
    trainer = Trainer(tiny_config(train={"epochs": 1, "ema": 0.8}), splits=splits, progress=None)
    seen = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        result = step(*args, **kwargs)
        seen.append([p.detach().clone() for p in trainer.model.parameters()])
        return result

    monkeypatch.setattr(trainer.optimizer, "step", recording_step)
    trainer.fit()
    expected = seen[0]
    for weights in seen[1:]:
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, weights, strict=True)]
    assert len(seen) > 2 and trainer.average.state_dict()["updates"] == len(seen)
    for averaged, value in zip(trainer.scored_model.parameters(), expected, strict=True):
        assert torch.allclose(averaged, value, atol=1e-5)
    assert not all(
        torch.equal(a, b) for a, b in zip(trainer.scored_model.parameters(), seen[-1], strict=True)
    )
    scores = evaluate_cross_generation(trainer.average.model, splits.val, trainer.source, trainer.target)
    assert trainer.evaluate("val")["accuracy"] == scores["accuracy"]


def test_best_weights_and_checkpoints_hold_the_average(synthetic_splits, tmp_path: Path, monkeypatch):
    splits = synthetic_splits(n_train=96, paired_fraction=0.25)
    config = tiny_config(train={"epochs": 2, "ema": 0.9}, seed=3)
    trainer = Trainer(config, out_dir=tmp_path, splits=splits, progress=None)
    final = trainer.fit()
    best = torch.load(tmp_path / "checkpoints" / "best_model.pt")
    assert list(best) == list(trainer.scored_model.state_dict())
    if final["best_epoch"] == 2:  # the last weights were the best: the file holds the average, not the model
        assert all(torch.equal(best[key], value) for key, value in trainer.scored_model.state_dict().items())
    monkeypatch.setattr("dmvae.training.trainer.load_splits", lambda *args, **kwargs: splits)
    last = load_run(tmp_path, "last")  # the run's config names an npz file it never read
    assert_same_parameters(last.scored_model, trainer.scored_model)
    assert_same_parameters(last.model, trainer.model)
    selected = load_run(tmp_path, "best")
    assert selected.evaluate("test")["accuracy"] == final["test_accuracy"]
    plain = Trainer(tiny_config(train={"epochs": 1}, seed=3), splits=splits, progress=None)
    plain.fit()
    with pytest.raises(UserError, match="no weight average"):
        Trainer(config, splits=splits, progress=None).load_state_dict(plain.state_dict())


@pytest.mark.parametrize("value", [-0.1, 1.0, "yes", True])
def test_a_bad_ema_is_a_one_line_error(value):
    values = tiny_config().to_dict()
    values["train"]["ema"] = value
    with pytest.raises(UserError, match=r"train.ema must be in \[0, 1\)"):
        RunConfig.from_dict(values)

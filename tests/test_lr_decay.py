"""train.lr_decay: the cosine learning rate's closed form, the trainer's use of it, bad values."""

from __future__ import annotations

import itertools
import math

import pytest
from fixtures_training import tiny_config

from dmvae.config import RunConfig
from dmvae.errors import UserError
from dmvae.training import Trainer
from dmvae.training.hardware import epoch_lr


def test_the_cosine_rate_falls_from_lr_to_half_at_mid_run_and_towards_zero():
    rates = [epoch_lr(1e-3, "cosine", epoch, 4) for epoch in range(4)]
    assert rates[0] == pytest.approx(1e-3) and rates[2] == pytest.approx(5e-4)
    assert rates[3] == pytest.approx(1e-3 * (1 - math.sqrt(0.5)) / 2)
    assert all(a > b for a, b in zip(rates[:-1], rates[1:], strict=True)) and rates[3] > 0
    assert {epoch_lr(1e-3, "none", epoch, 4) for epoch in range(4)} == {1e-3}


@pytest.mark.parametrize("restarts", [1, 2])
def test_every_step_of_an_epoch_takes_that_epochs_rate(restarts: int, synthetic_splits, monkeypatch):
    train = {"epochs": 4, "lr": 2e-3, "lr_decay": "cosine", "restarts": restarts, "restart_epochs": 2}
    trainer = Trainer(tiny_config(train=train), splits=synthetic_splits(n_train=96), progress=None)
    seen: list[tuple[int, float]] = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append((trainer.epoch, trainer.optimizer.param_groups[0]["lr"]))
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", recording_step)
    trainer.fit()
    # each restart trains epochs 0 and 1 of the 4-epoch run, then the kept one goes on with 2 and 3
    epochs = [0, 1] * restarts + [2, 3]
    assert [epoch for epoch, _ in itertools.groupby(e for e, _ in seen)] == epochs
    assert all(lr == pytest.approx(epoch_lr(2e-3, "cosine", epoch, 4)) for epoch, lr in seen)
    assert [m["train/lr"] for m in trainer.history] == [epoch_lr(2e-3, "cosine", e, 4) for e in range(4)]


@pytest.mark.parametrize("value", ["linear", None, 1])
def test_an_unknown_lr_decay_is_a_one_line_error(value):
    values = tiny_config().to_dict()
    values["train"]["lr_decay"] = value
    with pytest.raises(UserError, match="train.lr_decay"):
        RunConfig.from_dict(values)

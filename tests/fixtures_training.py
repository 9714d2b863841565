"""A tiny MLP run config and the helpers that compare two runs, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dmvae.config import RunConfig


def tiny_config(**sections) -> RunConfig:
    values = {
        "device": "cpu",
        "data": {"name": "npz", "path": "unused.npz"},
        "model": {"architecture": "mlp", "hidden_dim": 32, "shared": "categorical", "shared_dim": 10,
                  "private_dim": {"image": 3}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "checkpoint_every": 1},
        "eval": {"figures": False},
    }  # fmt: skip
    for section, overrides in sections.items():
        values[section] = values[section] | overrides if isinstance(overrides, dict) else overrides
    return RunConfig.from_dict(values)


def without_timing(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in metrics.items() if key != "seconds"} for metrics in history]


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


class Interrupted(Exception):
    pass


def straight_and_resumed(config: RunConfig, splits, out_dir: Path, stop_after: int):
    """(unbroken trainer, its final, resumed trainer, its final): the same run trained straight through, and
    interrupted after epoch `stop_after` then resumed from its checkpoint in `out_dir`."""
    from dmvae.training import Trainer

    straight = Trainer(config, splits=splits, progress=None)
    final = straight.fit()

    def interrupt(trainer: Trainer, epoch: int, metrics: dict) -> None:
        if epoch == stop_after:
            raise Interrupted

    first = Trainer(config, out_dir=out_dir, splits=splits, progress=None, hooks=[interrupt])
    try:
        first.fit()
    except Interrupted:
        pass
    assert first.epoch == stop_after and (out_dir / "checkpoints" / "last.pt").is_file()
    resumed = Trainer(config, out_dir=out_dir, splits=splits, progress=None)
    resumed.resume(out_dir / "checkpoints" / "last.pt")
    assert resumed.epoch == stop_after
    return straight, final, resumed, resumed.fit()

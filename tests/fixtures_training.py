"""A tiny MLP run config and the helpers that compare two runs, shared by the training tests."""

from __future__ import annotations

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
